import Foundation
import IntercomSandbox
import XCTest

/// What a user and a shell see of the command line: help with every option's values, the
/// version, typed values refused with exit 2, shell completions, JSON logs without secrets.
final class CommandLineTests: IntegrationTestCase {
    func test_help_listsEveryOptionWithItsValuesAndDefaults() async throws {
        let dir = try makeTemporaryDirectory()
        let result = try await run(["--help"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderrText)
        // Help wraps at the terminal's width: compare with white space runs as one space.
        let help = result.stdoutText.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for option in [
            "--dry-run", "--out", "--state-dir", "--report", "--batch-size", "--max-line-bytes", "--endpoint",
            "--region", "--api-version", "--concurrency", "--token-file", "--sandbox", "--max-retries", "--job-wait",
            "--request-timeout", "--connect-timeout", "--max-wait", "--restart", "--stream-name", "--follow",
            "--no-progress", "--quiet", "--log-level", "--log-format", "--version", "status", "sandbox",
        ] {
            XCTAssertTrue(help.contains(option), "--help does not name \(option):\n\(help)")
        }
        XCTAssertTrue(help.contains("values: us, eu, au"), help)
        XCTAssertTrue(help.contains("values: trace, debug, info, notice, warning, error, critical; default: info"), help)
        XCTAssertTrue(help.contains("values: text, json; default: text"), help)
        XCTAssertTrue(help.contains("default: 100"), help)
    }

    func test_version_namesTheToolAndTheIntercomAPIs() async throws {
        let dir = try makeTemporaryDirectory()
        let result = try await run(["--version"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderrText)
        XCTAssertTrue(result.stdoutText.hasPrefix("intercom-backfill 0."), result.stdoutText)
        XCTAssertTrue(result.stdoutText.contains("1.4 (bulk"), result.stdoutText)
        XCTAssertTrue(result.stdoutText.contains("2.13 and later (REST"), result.stdoutText)
    }

    func test_badTypedValues_exitTwoNamingTheValues() async throws {
        let dir = try makeTemporaryDirectory()
        for (arguments, expected) in [
            (["--region", "mars"], "us"), (["--log-level", "loud"], "trace"),
            (["--log-format", "xml"], "json"), (["--api-version", "2.12"], "--api-version"),
            (["--api-version", "3"], "--api-version"),
        ] {
            let result = try await run(arguments + ["--dry-run", Paths.sample.path, "--state-dir", dir.path], in: dir)
            try assertUsageErrorExit(result)
            XCTAssertTrue(result.stderrText.contains(expected), "\(arguments): \(result.stderrText)")
        }
    }

    func test_apiVersion_everyModeRuns_fromTheFlagOrTheEnvironment_aBadValueIsAUsageError() async throws {
        let dir = try makeTemporaryDirectory()
        let badEnvironment = try await run(
            ["--dry-run", "--out", "/dev/null", Paths.sample.path, "--state-dir", dir.path],
            environment: ["INTERCOM_API_VERSION": "1.5"], in: dir)
        try assertUsageErrorExit(badEnvironment)
        XCTAssertTrue(badEnvironment.stderrText.contains("INTERCOM_API_VERSION"), badEnvironment.stderrText)

        for (version, environment) in [("1.4", [:]), ("auto", [:]), ("2.14", [:]), (nil, ["INTERCOM_API_VERSION": "2.13"])] {
            let out = dir.appendingPathComponent("plan-\(version ?? "env").ndjson")
            let result = try await run(
                (version.map { ["--api-version", $0] } ?? [])
                    + ["--dry-run", "--out", out.path, "--quiet", Paths.sample.path, "--state-dir", dir.path],
                environment: environment, in: dir)
            XCTAssertEqual(result.status, 1, "the sample has rejects: exit 1 (\(version ?? "env")): \(result.stderrText)")
            // A REST plan is calls (`/contacts`, `/events`), a bulk one is bulk requests.
            let firstPaths = try String(contentsOf: out, encoding: .utf8).split(separator: "\n").prefix(50).joined()
            let rest = version?.hasPrefix("2.") ?? true
            XCTAssertEqual(firstPaths.contains("\"/bulk/users\""), !rest, version ?? "env")
            XCTAssertEqual(firstPaths.contains("\"/data_attributes?model=contact\""), rest, version ?? "env")
        }
    }

    /// Runs `script` in bash with the generated completion script loaded, and returns its stdout.
    private func bashCompletion(of words: [String], in dir: URL) async throws -> [String] {
        let binary = try XCTUnwrap(Paths.binary)
        let script = try await run(["--generate-completion-script", "bash"], in: dir)
        XCTAssertEqual(script.status, 0, script.stderrText)
        let completion = dir.appendingPathComponent("completion.bash")
        try script.stdout.write(to: completion)
        // The function the script registers for the command, as `complete -F NAME intercom-backfill`.
        let function = try XCTUnwrap(script.stdoutText.firstMatch(of: /complete -[^\n]*-F ([^ \n]+)/)?.1, script.stdoutText)
        let quoted = words.map { "'\($0)'" }.joined(separator: " ")
        let line = words.joined(separator: " ")
        let program = """
            PATH='\(binary.deletingLastPathComponent().path)':"$PATH"
            source '\(completion.path)'
            COMP_WORDS=(\(quoted)); COMP_CWORD=\(words.count - 1); COMP_LINE='\(line)'; COMP_POINT=${#COMP_LINE}
            \(function) "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        let bash = Process()
        bash.executableURL = URL(fileURLWithPath: "/bin/bash")
        bash.arguments = ["-c", program]
        bash.currentDirectoryURL = dir
        let out = Pipe()
        bash.standardOutput = out
        bash.standardError = FileHandle.nullDevice
        try bash.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        bash.waitUntilExit()
        XCTAssertEqual(bash.terminationStatus, 0)
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    func test_bashCompletion_offersTheValuesOfTypedOptions() async throws {
        let dir = try makeTemporaryDirectory()
        let regions = try await bashCompletion(of: ["intercom-backfill", "--region", ""], in: dir)
        XCTAssertEqual(Set(regions), ["us", "eu", "au"])
        let levels = try await bashCompletion(of: ["intercom-backfill", "--log-level", "w"], in: dir)
        XCTAssertEqual(levels, ["warning"])
        let formats = try await bashCompletion(of: ["intercom-backfill", "--log-format", ""], in: dir)
        XCTAssertEqual(Set(formats), ["text", "json"])
        let options = try await bashCompletion(of: ["intercom-backfill", "--log-"], in: dir)
        XCTAssertEqual(Set(options), ["--log-level", "--log-format"])
        let afterRun = try await bashCompletion(of: ["intercom-backfill", "run", "--region", "e"], in: dir)
        XCTAssertEqual(afterRun, ["eu"])
        let subcommands = try await bashCompletion(of: ["intercom-backfill", "st"], in: dir)
        XCTAssertTrue(subcommands.contains("status"), "\(subcommands)")
    }

    func test_bashCompletion_stateDirOffersFolders() async throws {
        let dir = try makeTemporaryDirectory()
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("state-a"), withIntermediateDirectories: true)
        try Data().write(to: dir.appendingPathComponent("state-file"))
        let folders = try await bashCompletion(of: ["intercom-backfill", "--state-dir", "state-"], in: dir)
        XCTAssertEqual(folders, ["state-a"])
    }

    func test_zshAndFishCompletion_areGeneratedWithTheValues() async throws {
        let dir = try makeTemporaryDirectory()
        for shell in ["zsh", "fish"] {
            let script = try await run(["--generate-completion-script", shell], in: dir)
            XCTAssertEqual(script.status, 0, script.stderrText)
            XCTAssertTrue(
                script.stdoutText.contains("us eu au") || script.stdoutText.contains("'us' 'eu' 'au'"),
                "\(shell): \(script.stdoutText)")
            XCTAssertTrue(script.stdoutText.contains("api-version"), "\(shell): \(script.stdoutText)")
        }
    }

    /// A token in the environment, the most verbose logging as JSON: every stderr line is a JSON
    /// object, and the token appears in none.
    func test_jsonLogs_everyLineIsJSON_andTheTokenNeverAppears() async throws {
        let token = "itest-secret-token-9d41c7e2"
        let dir = try makeTemporaryDirectory()
        try await withSandbox({ $0.bearerToken = token }) { server in
            let result = try await run(
                [
                    "--endpoint", server.baseURL, "--state-dir", dir.appendingPathComponent("state").path,
                    "--log-level", "trace", "--log-format", "json", "--job-wait", "60", Paths.sample.path,
                ],
                environment: ["INTERCOM_ACCESS_TOKEN": token], in: dir)
            XCTAssertEqual(result.status, 1, "the sample has rejects: \(result.stderrText)")
            XCTAssertFalse(result.stderrText.contains(token), "the token is in the log")
            XCTAssertFalse(result.stdoutText.contains(token))
            let lines = result.stderr.split(separator: 0x0A)
            XCTAssertGreaterThan(lines.count, 1)
            var levels: Set<String> = []
            for line in lines {
                let object = try jsonObject(Data(line))
                XCTAssertNotNil(object["time"] as? String)
                XCTAssertNotNil(object["message"] as? String)
                levels.insert(try XCTUnwrap(object["level"] as? String))
            }
            XCTAssertTrue(levels.contains("debug") || levels.contains("trace"), "\(levels)")
            XCTAssertTrue(result.stderrText.contains("\"kind\":\"summary\""), "the summary is a JSON line too")
        }
    }
}

/// The committed man page (`scripts/generate-manual.sh`) is the commands' help: it must name
/// every option the binary has, or it was not regenerated after an option changed.
final class ManualPageTests: IntegrationTestCase {
    func test_manPage_namesEveryOptionOfEveryCommand() async throws {
        let page = try String(
            contentsOf: Paths.packageRoot.appendingPathComponent("docs/man/intercom-backfill.1"), encoding: .utf8)
        let dir = try makeTemporaryDirectory()
        for command in [["run"], ["status"], ["sandbox"]] {
            let help = try await run(command + ["--help"], in: dir)
            XCTAssertEqual(help.status, 0, help.stderrText)
            let options = Set(help.stdoutText.matches(of: /--[a-z][a-z-]+/).map { String($0.output) })
            XCTAssertFalse(options.isEmpty)
            for option in options where option != "--help" {
                // mdoc writes `--region` as `Fl -region` (Fl adds the first dash).
                XCTAssertTrue(
                    page.contains("Fl " + option.dropFirst()),
                    "docs/man/intercom-backfill.1 lacks \(command) \(option): run scripts/generate-manual.sh")
            }
        }
    }
}
