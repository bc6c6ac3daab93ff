import XCTest

@testable import AgentAPI

final class APIRequestTests: XCTestCase {
    func testJSONBodyParses() throws {
        let request = APIRequest(method: .PUT, path: "/x", body: Array(#"{"a":1}"#.utf8))
        XCTAssertEqual(try request.jsonBody(), ["a": 1])
    }

    func testEmptyBodyIsInvalidJSON() {
        for body in ["", "  \n"] {
            XCTAssertThrowsError(try APIRequest(method: .PUT, path: "/x", body: Array(body.utf8)).jsonBody()) {
                let error = $0 as? AgentError
                XCTAssertEqual(error?.code, .invalidJSON)
                XCTAssertEqual(error?.message, "request body is empty; expected a JSON document")
            }
        }
    }

    func testQueryIntValidates() throws {
        let request = APIRequest(method: .GET, path: "/x", query: ["limit": "50", "bad": "5x", "neg": "-1"])
        XCTAssertEqual(try request.queryInt("limit", in: 1...1000), 50)
        XCTAssertNil(try request.queryInt("absent"))
        XCTAssertThrowsError(try request.queryInt("bad")) {
            XCTAssertEqual(($0 as? AgentError)?.message, "bad: expected an integer, got \"5x\"")
            XCTAssertEqual(($0 as? AgentError)?.field, "bad")
        }
        XCTAssertThrowsError(try request.queryInt("neg", in: 0...10)) {
            XCTAssertEqual(($0 as? AgentError)?.message, "neg: must be between 0 and 10, got -1")
        }
    }

    func testQueryBool() throws {
        let request = APIRequest(method: .GET, path: "/x", query: ["a": "true", "b": "0", "c": "", "d": "maybe"])
        XCTAssertEqual(try request.queryBool("a"), true)
        XCTAssertEqual(try request.queryBool("b"), false)
        XCTAssertEqual(try request.queryBool("c"), true)
        XCTAssertNil(try request.queryBool("e"))
        XCTAssertThrowsError(try request.queryBool("d"))
    }

    func testMutatingMethods() {
        XCTAssertEqual(HTTPMethod.allCases.filter(\.isMutating), [.PUT, .POST, .PATCH, .DELETE])
    }
}
