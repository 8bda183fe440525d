import Foundation
import XCTest

@testable import IntercomBackfill

final class InputDiscoveryTests: XCTestCase {
    private func makeTree() throws -> TemporaryFolder {
        let folder = try TemporaryFolder()
        for name in ["logs/b", "logs/a/z", "logs/a/b", "logs/A", "logs/.hidden", "logs/a-c", "logs/.git/objects/x"] {
            try folder.write(name, "{}\n")
        }
        return folder
    }

    func test_discovery_folderFilesComeInByteOrderOfTheirRelativePath_hiddenNamesSkipped() throws {
        let folder = try makeTree()
        // Relative arguments, as users type them; the working directory is put back afterwards.
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(folder.path))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        // As `LC_ALL=C sort`: "-" (0x2D) sorts before "/" (0x2F), upper case before lower case.
        XCTAssertEqual(
            try InputDiscovery.expand(["logs"]).map(\.displayPath), ["logs/A", "logs/a-c", "logs/a/b", "logs/a/z", "logs/b"])
        XCTAssertEqual(
            try InputDiscovery.expand(["logs/"]).map(\.displayPath), ["logs/A", "logs/a-c", "logs/a/b", "logs/a/z", "logs/b"])
        XCTAssertEqual(
            try InputDiscovery.expand([folder.path + "/logs/a"]).map(\.displayPath),
            [folder.path + "/logs/a/b", folder.path + "/logs/a/z"])
    }

    func test_discovery_folderFilesHaveOpenablePathsAndSizes() throws {
        let folder = try makeTree()
        let inputs = try InputDiscovery.expand([folder.path + "/logs/"])
        for input in inputs {
            XCTAssertEqual(input.path, input.displayPath)
            XCTAssertEqual(input.size, 3)
            XCTAssertFalse(input.isStandardInput)
            XCTAssertEqual(FileManager.default.contents(atPath: input.path ?? ""), Data("{}\n".utf8))
        }
    }

    func test_discovery_argumentsKeepTheOrderGiven() throws {
        let folder = try makeTree()
        let file = try folder.write("single.gz", "x\n")
        let inputs = try InputDiscovery.expand([file, "-", folder.path + "/logs/a"])
        XCTAssertEqual(inputs.map(\.displayPath), [file, "-", folder.path + "/logs/a/b", folder.path + "/logs/a/z"])
        XCTAssertEqual(inputs[0].size, 2)
        XCTAssertEqual(inputs[1], InputFile.standardInput)
        XCTAssertTrue(inputs[1].isStandardInput)
        XCTAssertNil(inputs[1].size)
    }

    func test_discovery_missingPathIsNotFoundBeforeAnyWork() throws {
        let folder = try makeTree()
        let missing = folder.path + "/nope.gz"
        XCTAssertThrowsError(try InputDiscovery.expand([folder.path + "/logs", missing])) { error in
            XCTAssertEqual((error as? InputError)?.code, .notFound)
            XCTAssertEqual((error as? InputError)?.source, missing)
            XCTAssertTrue(String(describing: error).contains(missing))
        }
    }

    func test_discovery_standardInputNamedTwiceIsAnError() {
        XCTAssertThrowsError(try InputDiscovery.expand(["-", "-"])) { error in
            XCTAssertEqual((error as? InputError)?.code, .standardInputRepeated)
        }
    }

    func test_discovery_symlinkedFilesAreFollowed_symlinkedFoldersAreNotDescended() throws {
        let folder = try TemporaryFolder()
        try folder.write("data/real", "{}\n")
        try folder.write("elsewhere/other", "{}\n")
        let manager = FileManager.default
        try manager.createSymbolicLink(
            atPath: folder.path + "/data/link-to-file", withDestinationPath: folder.path + "/elsewhere/other")
        try manager.createSymbolicLink(
            atPath: folder.path + "/data/link-to-folder", withDestinationPath: folder.path + "/elsewhere")
        try manager.createSymbolicLink(atPath: folder.path + "/data/loop", withDestinationPath: folder.path + "/data")
        let inputs = try InputDiscovery.expand([folder.path + "/data"])
        XCTAssertEqual(inputs.map(\.displayPath), [folder.path + "/data/link-to-file", folder.path + "/data/real"])
        XCTAssertEqual(inputs.first?.size, 3)
    }

    func test_discovery_emptyFolderGivesNoInputs() throws {
        let folder = try TemporaryFolder()
        XCTAssertEqual(try InputDiscovery.expand([folder.path]), [])
    }
}
