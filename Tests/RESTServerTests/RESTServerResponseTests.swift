import AgentAPI
import Foundation
import RESTServer
import XCTest

final class RESTServerResponseTests: XCTestCase {
    func testGetReturnsJSON() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let result = try curl(server.path, "GET", "/v1/hello")
        XCTAssertEqual(result.status, 200)
        XCTAssertEqual(result.contentType, "application/json")
        XCTAssertEqual(try result.json(), ["hello": "world"])
    }

    func testPutWithPathParameterAndBody() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let result = try curl(server.path, "PUT", "/v1/echo/17", body: Array(#"{"a":[1,2.5,"x"]}"#.utf8))
        XCTAssertEqual(result.status, 201)
        XCTAssertEqual(try result.json(), ["id": "17", "body": ["a": [1, 2.5, "x"]]])
    }

    func testUnknownPathIs404JSON() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let result = try curl(server.path, "GET", "/v1/nothing/here")
        XCTAssertEqual(result.status, 404)
        XCTAssertEqual(result.contentType, "application/json")
        XCTAssertEqual(try result.json(), ["error": ["code": "not-found", "message": "no API path /v1/nothing/here"]])
    }

    func testWrongMethodIs405JSON() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let result = try curl(server.path, "DELETE", "/v1/hello")
        XCTAssertEqual(result.status, 405)
        XCTAssertEqual(
            try result.json(),
            [
                "error": [
                    "code": "method-not-allowed",
                    "message": "method DELETE is not allowed on /v1/hello; allowed: GET, HEAD",
                ]
            ])
    }

    func testMethodsOutsideTheAPIAre405() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let connection = try RawHTTPConnection(path: server.path)
        for method in ["OPTIONS", "TRACE", "BREW"] {
            let response = try connection.request(method, "/v1/hello")
            XCTAssertEqual(response.status, 405, method)
            XCTAssertEqual(response.headers["allow"], "GET, HEAD")
            XCTAssertEqual(
                try JSON.parse(response.body)["error"]?["message"],
                .string("method \(method) is not allowed on /v1/hello; allowed: GET, HEAD"))
        }
    }

    func testMalformedJSONBodyIs400WithTheParserMessage() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let result = try curl(server.path, "PUT", "/v1/echo/1", body: Array(#"{"a": 1,}"#.utf8))
        XCTAssertEqual(result.status, 400)
        let error = try result.json()["error"]
        XCTAssertEqual(error?["code"], "invalid-json")
        XCTAssertEqual(error?["message"], "invalid JSON at line 1, column 9 (byte 9): string or '}' expected near '}'")
    }

    func testInvalidUTF8BodyIs400() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let result = try curl(server.path, "PUT", "/v1/echo/1", body: [0x22, 0xC3, 0x28, 0x22])
        XCTAssertEqual(result.status, 400)
        XCTAssertEqual(try result.json()["error"]?["code"], "invalid-json")
    }

    func testNonAPIErrorIsGeneric500AndLogged() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let result = try curl(server.path, "GET", "/v1/fail")
        XCTAssertEqual(result.status, 500)
        XCTAssertEqual(
            try result.json(), ["error": ["code": "internal", "message": "internal error while handling GET /v1/fail"]])
        let failures = server.logs.all.filter { $0.level == .error && $0.message == "handler failed" }
        XCTAssertEqual(failures.first?.metadata["error"], "TestFailure()")
    }

    func testQueryAndLowerCasedHeadersReachTheHandler() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let result = try curl(
            server.path, "GET", "/v1/request?limit=5&all&labels=k8s:app=x,k8s:team=y",
            headers: ["X-Test: hello"])
        let json = try result.json()
        XCTAssertEqual(json["query"], ["limit": "5", "all": "", "labels": "k8s:app=x,k8s:team=y"])
        XCTAssertEqual(json["x-test"], "hello")
    }

    func testPeerCredentialsAreTheClientProcess() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let result = try curl(server.path, "GET", "/v1/request")
        let peer = try result.json()["peer"]
        XCTAssertEqual(peer?["uid"]?.intValue, Int64(getuid()))
        XCTAssertEqual(peer?["gid"]?.intValue, Int64(getgid()))
        XCTAssertEqual(peer?["pid"]?.intValue, Int64(result.pid))
    }

    func testMutatingRequestIsLoggedAtInfoWithCredentials() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        _ = try curl(server.path, "PUT", "/v1/echo/3", body: Array("{}".utf8))
        let result = try curl(server.path, "GET", "/v1/hello")
        XCTAssertEqual(result.status, 200)
        let records = server.logs.all
        let put = records.first { $0.metadata["method"] == "PUT" }
        XCTAssertEqual(put?.level, .info)
        XCTAssertEqual(put?.message, "PUT /v1/echo/3 201")
        XCTAssertEqual(put?.metadata["uid"], "\(getuid())")
        XCTAssertEqual(put?.metadata["gid"], "\(getgid())")
        XCTAssertNotNil(put?.metadata["pid"].flatMap { Int32($0) })
        XCTAssertEqual(records.first { $0.metadata["method"] == "GET" }?.level, .debug)
    }

    func testHeadAnswersLikeGetWithoutABody() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let connection = try RawHTTPConnection(path: server.path)
        let head = try connection.request("HEAD", "/v1/hello")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.headers["content-length"], "\(JSON.object(["hello": "world"]).serialized().utf8.count)")
        // Nothing but the next response follows on the connection.
        let get = try connection.request("GET", "/v1/hello")
        XCTAssertEqual(try JSON.parse(get.body), ["hello": "world"])
    }
}
