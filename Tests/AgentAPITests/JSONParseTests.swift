import XCTest

@testable import AgentAPI

final class JSONParseTests: XCTestCase {
    private func parseError(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> AgentError? {
        parseError(Array(text.utf8), file: file, line: line)
    }

    private func parseError(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> AgentError? {
        do {
            let value = try JSON.parse(bytes)
            XCTFail("expected a parse error, got \(value)", file: file, line: line)
            return nil
        } catch {
            XCTAssertEqual(error.code, .invalidJSON, file: file, line: line)
            XCTAssertEqual(error.status, 400, file: file, line: line)
            return error
        }
    }

    func testParsesEveryKindOfValue() throws {
        let value = try JSON.parse(#"{"a": [1, -2, 2.5, 1e3, true, false, null, "s\u00e9\n"], "b": {}}"#)
        XCTAssertEqual(
            value,
            .object([
                "a": .array([
                    .int(1), .int(-2), .double(2.5), .double(1000), .bool(true), .bool(false), .null,
                    .string("sé\n"),
                ]),
                "b": .object([:]),
            ]))
    }

    func testParsesBareScalars() throws {
        XCTAssertEqual(try JSON.parse("42"), .int(42))
        XCTAssertEqual(try JSON.parse("\"x\""), .string("x"))
        XCTAssertEqual(try JSON.parse(" null "), .null)
    }

    func testIntegersKeepFullInt64Range() throws {
        XCTAssertEqual(try JSON.parse("9223372036854775807"), .int(Int64.max))
        XCTAssertEqual(try JSON.parse("-9223372036854775808"), .int(Int64.min))
        let error = parseError("9223372036854775808")
        XCTAssertTrue(error?.message.contains("too big") ?? false, error?.message ?? "")
    }

    func testErrorSaysWhatAndWhere() {
        let error = parseError("bad")
        XCTAssertEqual(error?.message, "invalid JSON at line 1, column 3 (byte 3): invalid token near 'bad'")
        XCTAssertNil(error?.field)
    }

    func testErrorPositionOnLaterLine() {
        let error = parseError("{\n  \"a\": 1,\n  \"b\": ]\n}")
        // jansson's column is the offending character's; its byte position counts the bytes read so far.
        XCTAssertEqual(error?.message, "invalid JSON at line 3, column 8 (byte 20): unexpected token near ']'")
    }

    func testDuplicateKeysAreRejected() {
        let error = parseError(#"{"a": 1, "a": 2}"#)
        XCTAssertTrue(error?.message.contains("duplicate object key") ?? false, error?.message ?? "")
    }

    func testInvalidUTF8IsAClearErrorNotACrash() {
        let error = parseError([0x22, 0x61, 0xFF, 0xFE, 0x22])
        XCTAssertTrue(error?.message.contains("unable to decode byte 0xff") ?? false, error?.message ?? "")
        // A truncated multi-byte sequence, too.
        XCTAssertNotNil(parseError([0x5B, 0x22, 0xE2, 0x82, 0x22, 0x5D]))
    }

    func testEscapedNulIsRejected() {
        let error = parseError(#"["a\u0000b"]"#)
        XCTAssertTrue(error?.message.contains("\\u0000 is not allowed") ?? false, error?.message ?? "")
    }

    func testEmptyAndTrailingInputAreRejected() {
        XCTAssertTrue(parseError("")?.message.contains("end of file") ?? false)
        XCTAssertTrue(parseError("1 2")?.message.contains("end of file expected") ?? false)
    }

    func testDeepNestingIsAClearError() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let error = parseError(deep)
        XCTAssertTrue(error?.message.contains("maximum parsing depth reached") ?? false, error?.message ?? "")
        XCTAssertTrue(error?.message.contains("at most 2048 levels") ?? false, error?.message ?? "")
    }

    func testNestingWithinTheLimitParses() throws {
        let depth = 2000
        var value = try JSON.parse(String(repeating: "[", count: depth) + String(repeating: "]", count: depth))
        var levels = 0
        while case .array(let inner) = value, let first = inner.first {
            value = first
            levels += 1
        }
        XCTAssertEqual(levels, depth - 1)
        XCTAssertEqual(value, .array([]))
    }
}
