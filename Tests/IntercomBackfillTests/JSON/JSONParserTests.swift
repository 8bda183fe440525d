import Foundation
import XCTest

@testable import IntercomBackfill

/// The line parser: the full JSON grammar, strictly, without crashing on anything.
final class JSONParserTests: XCTestCase {
    func parse(_ text: String, maxDepth: Int = 256) -> Result<[JSONNode], JSONSyntaxError> {
        var parser = JSONParser(maxDepth: maxDepth)
        var copy = text
        return copy.withUTF8 { utf8 in
            do throws(JSONSyntaxError) {
                try parser.parse(UnsafeRawBufferPointer(utf8))
                return .success(parser.nodes)
            } catch {
                return .failure(error)
            }
        }
    }

    func isValid(_ text: String) -> Bool { if case .success = parse(text) { return true } else { return false } }

    func test_acceptsTheWholeGrammar() {
        for ok in [
            "{}", "[]", " {\"a\" : [1, -0, 0.5, -1.25e+10, 1E-2, true, false, null, \"\"]} ",
            "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"",
            "{\"a\":{\"b\":{\"c\":[[]]}}}", "0", "-12", "\"😀\"", "\"\\ud83d\\ude00\"",
        ] {
            XCTAssertTrue(isValid(ok), ok)
        }
    }

    func test_rejectsInvalidGrammar() {
        for bad in [
            "", " ", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[01]", "[1.]", "[.5]", "[1e]", "[+1]", "[-]",
            "{a:1}", "['a']", "[tru]", "[nul]", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"a\tb\"", "{} {}", "[1 2]",
            "{\"a\":1 \"b\":2}", "NaN", "[Infinity]",
        ] {
            XCTAssertFalse(isValid(bad), bad)
        }
    }

    func test_rejectsInvalidUTF8() {
        for bytes: [UInt8] in [
            [0x22, 0xFF, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],
            [0x22, 0xE2, 0x82, 0x22],
        ] {
            var parser = JSONParser()
            XCTAssertThrowsError(try bytes.withUnsafeBytes { try parser.parse($0) }, "\(bytes)") { error in
                XCTAssertEqual((error as? JSONSyntaxError)?.reason, .invalidUTF8)
            }
        }
    }

    func test_nestingDeeperThanTheLimit_isRejectedNotCrashing() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        guard case .failure(let error) = parse(deep) else { return XCTFail("accepted") }
        XCTAssertEqual(error.reason, .tooDeep)
        XCTAssertTrue(isValid(String(repeating: "[", count: 256) + String(repeating: "]", count: 256)))
        XCTAssertFalse(isValid(String(repeating: "[", count: 257) + String(repeating: "]", count: 257)))
    }

    func test_tapeRecordsKindsCountsAndSubtrees() throws {
        let nodes = try parse("{\"a\":[1,2],\"b\":\"x\"}").get()
        XCTAssertEqual(nodes.map(\.kind), [.object, .string, .array, .number, .number, .string, .string])
        XCTAssertEqual(nodes[0].count, 2)
        XCTAssertEqual(nodes[2].count, 2)
        XCTAssertEqual(nodes[2].subtreeEnd, 5)
        XCTAssertEqual(nodes[0].subtreeEnd, 7)
    }

    func test_numbersKeepTheirSourceText_integerFlag() throws {
        var parser = JSONParser()
        let text = "[12345678901234567890,2.50,-0,1e3]"
        try Array(text.utf8).withUnsafeBytes { bytes in
            try parser.parse(bytes)
            parser.nodes.withUnsafeBufferPointer { nodes in
                let view = JSONView(bytes: bytes, nodes: nodes)
                XCTAssertEqual(String(decoding: view.raw(1), as: UTF8.self), "12345678901234567890")
                XCTAssertNil(view.int64(1), "does not fit: no silent rounding")
                XCTAssertEqual(String(decoding: view.raw(2), as: UTF8.self), "2.50")
                XCTAssertTrue(nodes[3].flag)
                XCTAssertFalse(nodes[4].flag)
                XCTAssertEqual(view.double(4), 1000)
            }
        }
    }

    func test_duplicateKeys_lookupReturnsTheLast() throws {
        var parser = JSONParser()
        try Array("{\"k\":1,\"k\":2}".utf8).withUnsafeBytes { bytes in
            try parser.parse(bytes)
            parser.nodes.withUnsafeBufferPointer { nodes in
                let view = JSONView(bytes: bytes, nodes: nodes)
                XCTAssertEqual(view.member(0, "k").map { String(decoding: view.raw($0), as: UTF8.self) }, "2")
            }
        }
    }

    func test_escapedKeys_matchLookups() throws {
        XCTAssertEqual(object(mappedData("{\"type\":\"identify\",\"user\\u0049d\":\"u\"}"))["user_id"] as? String, "u")
    }

    /// Random JSON-ish bytes never crash the parser, and whatever it accepts Foundation accepts too.
    func test_randomBytes_neverCrash_andAcceptedInputIsValidJSON() {
        var rng = SystemRandomNumberGenerator()
        var parser = JSONParser()
        var accepted = 0
        for _ in 0..<5000 {
            let count = Int.random(in: 0..<24, using: &rng)
            let alphabet = Array("{}[]\":,.-+eE0123456789tfnul\\ \u{7f}".utf8) + [0xC3, 0xFF, 0xE2, 0x80]
            let bytes = (0..<count).map { _ in alphabet.randomElement(using: &rng)! }
            if (try? bytes.withUnsafeBytes({ try parser.parse($0) })) != nil {
                accepted += 1
                // Foundation refuses numbers beyond Double (9e999), which JSON's grammar allows.
                let hasExponent = zip(bytes, bytes.dropFirst()).contains { isDigit($0) && ($1 | 0x20) == UInt8(ascii: "e") }
                if hasExponent { continue }
                XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(bytes), options: .fragmentsAllowed), "\(bytes)")
            }
        }
        XCTAssertLessThan(accepted, 5000, "random bytes cannot all be JSON")
    }
}
