import AgentAPI
import Foundation
import RESTServer
import XCTest

final class RESTServerBodyLimitTests: XCTestCase {
    private let limit = 1 << 20

    func testBodyAtTheLimitIsAccepted() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let result = try curl(server.path, "POST", "/v1/size", body: [UInt8](repeating: 0x61, count: limit))
        XCTAssertEqual(result.status, 200)
        XCTAssertEqual(try result.json(), ["bytes": JSON(limit)])
    }

    func testBodyOneByteOverTheLimitIs413() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let result = try curl(server.path, "POST", "/v1/size", body: [UInt8](repeating: 0x61, count: limit + 1))
        XCTAssertEqual(result.status, 413)
        XCTAssertEqual(
            try result.json(),
            ["error": ["code": "payload-too-large", "message": "request body exceeds the limit of 1048576 bytes"]])
    }

    func testChunkedBodyOverTheLimitIs413WhileReading() throws {
        // Without Content-Length the limit can only be enforced as the body arrives.
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let result = try curl(
            server.path, "POST", "/v1/size", body: [UInt8](repeating: 0x61, count: limit + 1),
            headers: ["Transfer-Encoding: chunked"])
        XCTAssertEqual(result.status, 413)
        XCTAssertEqual(try result.json()["error"]?["code"], "payload-too-large")
    }

    func testContentLengthOverTheLimitIsRefusedBeforeTheBody() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let connection = try RawHTTPConnection(path: server.path)
        try connection.send("POST /v1/size HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(limit + 1)\r\n\r\n")
        let response = try connection.readResponse()
        XCTAssertEqual(response.status, 413)
        XCTAssertEqual(try JSON.parse(response.body)["error"]?["code"], "payload-too-large")
    }

    func testSmallerConfiguredLimit() throws {
        let server = try TestServer(routes: TestRoutes.basic, options: RESTServer.Options(maxBodyBytes: 10))
        defer { server.stop() }
        XCTAssertEqual(try curl(server.path, "POST", "/v1/size", body: Array("0123456789".utf8)).status, 200)
        let result = try curl(server.path, "POST", "/v1/size", body: Array("0123456789a".utf8))
        XCTAssertEqual(result.status, 413)
        XCTAssertEqual(try result.json()["error"]?["message"], "request body exceeds the limit of 10 bytes")
    }
}
