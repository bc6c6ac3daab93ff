import XCTest

@testable import AgentAPI

/// `JSON.parse(_:elements:)` reads an array one element at a time; everything it returns, hands over or throws
/// must be what the whole parse gives for the same text.
final class JSONParseElementsTests: XCTestCase {
    private func elements(_ text: String) throws(AgentError) -> (handed: [JSON], whole: JSON?) {
        var handed: [JSON] = []
        let whole = try JSON.parse(Array(text.utf8)) { (element: JSON) throws(AgentError) in handed.append(element) }
        return (handed, whole)
    }

    private func nested(_ depth: Int) -> String {
        String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
    }

    func testAnArraysElementsAreHandedOverInOrder() throws {
        let texts = [
            "[]", " [ ] ", "[1]", "[1 ,2.5, -3e2 ,\"a\",true,false,null]", "[-0]", "[1e5]", "[\"]\",\",\"]",
            #"[{"a":[1,{}]},[[]],{},"x\"y"]"#, "\n[ {\"k\": \"v\"} ]\n", "[\(nested(2000))]", "[0,\(nested(2046))]",
        ]
        for text in texts {
            let (handed, whole) = try elements(text)
            XCTAssertNil(whole, text)
            XCTAssertEqual(handed, try JSON.parse(text).arrayValue, text)
        }
    }

    func testAnyOtherDocumentIsReturnedWhole() throws {
        for text in [#"{"a": [1, 2]}"#, "42", " \"s\" ", "null"] {
            let (handed, whole) = try elements(text)
            XCTAssertEqual(handed, [], text)
            XCTAssertEqual(whole, try JSON.parse(text), text)
        }
    }

    func testTextThatIsNotJSONFailsAsTheWholeParseFails() {
        let texts = [
            "[1,]", "[1 2]", "[", "[1", "[1,", "[1]x", "[1] [2]", #"[{"a":1,"a":2}]"#, "[bad]", "[{}, bad]",
            "[\(nested(2048))]", nested(100_000), "[\"\\u0000\"]", "",
        ]
        for text in texts {
            var wholeError: AgentError?
            do { _ = try JSON.parse(text) } catch { wholeError = error }
            XCTAssertNotNil(wholeError, text)
            do {
                _ = try elements(text)
                XCTFail("expected \(wholeError?.message ?? "an error") for \(text.prefix(80))")
            } catch {
                XCTAssertEqual(error.code, .invalidJSON, text)
                XCTAssertEqual(error.message, wholeError?.message, text)
            }
        }
    }

    func testTheCallersErrorStandsOnlyForValidText() {
        let refuse = { (element: JSON) throws(AgentError) in
            if element == .int(2) { throw AgentError.invalidField("x", "two") }
        }
        XCTAssertThrowsError(try JSON.parse(Array("[1, 2, 3]".utf8), elements: refuse)) { error in
            XCTAssertEqual((error as? AgentError)?.field, "x")
        }
        // The syntax fault comes after the element the caller refused, and is what the request is told.
        XCTAssertThrowsError(try JSON.parse(Array("[1, 2, 3,]".utf8), elements: refuse)) { error in
            XCTAssertEqual((error as? AgentError)?.code, .invalidJSON)
        }
    }
}
