import XCTest

@testable import AgentAPI

final class AgentErrorTests: XCTestCase {
    func testInvalidFieldNamesTheField() {
        let error = AgentError.invalidField("addressing.ipv4", "expected an IPv4 address, got \"x\"")
        XCTAssertEqual(error.status, 400)
        XCTAssertEqual(error.code.rawValue, "invalid-field")
        XCTAssertEqual(error.field, "addressing.ipv4")
        XCTAssertEqual(error.message, "addressing.ipv4: expected an IPv4 address, got \"x\"")
        XCTAssertEqual(
            error.json,
            ["error": ["code": "invalid-field", "message": .string(error.message), "field": "addressing.ipv4"]])
    }

    func testJSONLeavesOutAbsentField() {
        XCTAssertEqual(
            AgentError.notFound("endpoint 12 not found").json,
            ["error": ["code": "not-found", "message": "endpoint 12 not found"]])
    }

    func testStatusesOfConstructors() {
        let cases: [(AgentError, AgentError.Code, Int)] = [
            (.invalidJSON("x"), .invalidJSON, 400), (.notFound("x"), .notFound, 404),
            (.methodNotAllowed("PUT", path: "/p", allowed: ["GET"]), .methodNotAllowed, 405),
            (.conflict("x"), .conflict, 409), (.payloadTooLarge(limit: 10), .payloadTooLarge, 413),
            (.internal("x"), .internal, 500), (.unsupported("x"), .unsupported, 501),
            (.capacity("x"), .capacity, 507), (.unavailable("x"), .unavailable, 503),
            (.datapath("x"), .datapath, 500),
        ]
        for (error, code, status) in cases {
            XCTAssertEqual(error.code, code)
            XCTAssertEqual(error.status, status, "\(code)")
        }
        XCTAssertEqual(AgentError.Code.capacity.description, "capacity-exceeded")
        XCTAssertEqual(AgentError.Code.datapath.description, "datapath-error")
    }

    func testErrorResponseCarriesStatusAndBody() throws {
        let response = APIResponse.error(.conflict("ip 10.0.1.5 belongs to endpoint 3", field: "addressing.ipv4"))
        XCTAssertEqual(response.status, 409)
        XCTAssertEqual(response.contentType, "application/json")
        let body = try JSON.parse(response.body)
        XCTAssertEqual(body["error"]?["field"], "addressing.ipv4")
        XCTAssertEqual(body["error"]?["code"], "conflict")
    }
}
