import Foundation
import Logging
import Synchronization
import XCTest

@testable import IntercomBackfill

final class JSONLogHandlerTests: XCTestCase {
    /// A handler whose lines are collected instead of written to stderr.
    private final class Lines: Sendable {
        let lines = Mutex<[[UInt8]]>([])
        var all: [[UInt8]] { lines.withLock { $0 } }
        func logger(level: Logger.Level = .trace) -> Logger {
            Logger(label: "test") { label in
                var handler = JSONLogHandler(label: label) { line in self.lines.withLock { $0.append(line) } }
                handler.logLevel = level
                return handler
            }
        }
    }

    private func object(_ line: [UInt8]) throws -> [String: Any] {
        XCTAssertEqual(line.last, 0x0A, "a line ends with a newline")
        XCTAssertEqual(line.filter { $0 == 0x0A }.count, 1, "one object, one line")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
    }

    func test_line_holdsTimeLevelLabelMessageAndMetadata() throws {
        let sink = Lines()
        var logger = sink.logger()
        logger[metadataKey: "run"] = "nightly"
        logger.warning("rate limit \"reset\" ahead\nby 3600 s", metadata: ["wait": "900", "nested": ["a": ["1", "2"]]])
        let line = try object(try XCTUnwrap(sink.all.first))
        XCTAssertEqual(line["level"] as? String, "warning")
        XCTAssertEqual(line["label"] as? String, "test")
        XCTAssertEqual(line["message"] as? String, "rate limit \"reset\" ahead\nby 3600 s")
        let metadata = try XCTUnwrap(line["metadata"] as? [String: Any])
        XCTAssertEqual(metadata["run"] as? String, "nightly")
        XCTAssertEqual(metadata["wait"] as? String, "900")
        XCTAssertEqual((metadata["nested"] as? [String: Any])?["a"] as? [String], ["1", "2"])
        let time = try XCTUnwrap(line["time"] as? String)
        XCTAssertNotNil(time.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression), time)
    }

    func test_noMetadata_noMetadataKey() throws {
        let sink = Lines()
        sink.logger().info("plain")
        XCTAssertNil(try object(try XCTUnwrap(sink.all.first))["metadata"])
    }

    func test_levelBelowTheHandlers_isNotWritten() {
        let sink = Lines()
        let logger = sink.logger(level: .notice)
        logger.info("hidden")
        logger.debug("hidden")
        logger.error("shown")
        XCTAssertEqual(sink.all.count, 1)
    }

    func test_secrets_neverWritten() throws {
        let secret = "tok_live_5e3b1f0c9a"
        let sink = Lines()
        let logger = sink.logger()
        logger.debug(
            "uploading",
            metadata: [
                "credentials": "\(IntercomCredentials.bearer(secret))",
                "Authorization": "Bearer \(secret)", "token": "\(secret)",
            ])
        logger.debug("basic", metadata: ["credentials": "\(IntercomCredentials.basic(appID: "app1", apiKey: secret))"])
        let text = String(decoding: sink.all.joined(), as: UTF8.self)
        XCTAssertEqual(sink.all.count, 2)
        XCTAssertFalse(text.contains(secret), text)
        XCTAssertTrue(text.contains("[redacted]"), text)
        XCTAssertTrue(text.contains("an access token"), text)
    }

    func test_controlAndNonASCIICharacters_stayValidJSON() throws {
        let sink = Lines()
        sink.logger().info("tab\there \u{1} é 日本 \u{7F} \\ end")
        let line = try object(try XCTUnwrap(sink.all.first))
        XCTAssertEqual(line["message"] as? String, "tab\there \u{1} é 日本 \u{7F} \\ end")
    }

    func test_timestamp_isUTCWithMilliseconds() {
        XCTAssertEqual(JSONLogHandler.timestamp(timespec(tv_sec: 0, tv_nsec: 0)), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(
            JSONLogHandler.timestamp(timespec(tv_sec: 1_796_156_521, tv_nsec: 123_999_999)), "2026-12-01T20:22:01.123Z")
    }
}
