import Synchronization
import XCTest

@testable import AgentAPI

final class RouterTests: XCTestCase {
    private struct Boom: Error {}

    private func echo(_ name: String) -> Route.Handler {
        { request in .json(["route": .string(name), "params": .object(request.pathParameters.mapValues(JSON.string))]) }
    }

    private var router: Router {
        Router(routes: [
            .get("/v1/endpoint", handler: echo("list")),
            .get("/v1/endpoint/{id}", handler: echo("get")),
            .delete("/v1/endpoint/{id}", handler: echo("delete")),
            .patch("/v1/endpoint/{id}/labels", handler: echo("labels")),
            .get("/v1/policy/{name}", handler: echo("policy")),
            .get("/v1/policy/trace", handler: echo("trace")),
            .put("/v1/fail", handler: { _ in throw AgentError.invalidField("x", "bad") }),
            .post("/v1/boom", handler: { _ in throw Boom() }),
            .post("/v1/policy/trace", handler: echo("trace-post")),
        ])
    }

    private func body(_ response: APIResponse) throws -> JSON { try JSON.parse(response.body) }

    func testPathParameters() throws {
        let response = router.route(APIRequest(method: .PATCH, path: "/v1/endpoint/42/labels"))
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(try body(response), ["route": "labels", "params": ["id": "42"]])
    }

    func testTrailingSlashAndExactMatch() throws {
        XCTAssertEqual(try body(router.route(APIRequest(method: .GET, path: "/v1/endpoint/")))["route"], "list")
        XCTAssertEqual(try body(router.route(APIRequest(method: .GET, path: "/v1/endpoint/7")))["route"], "get")
    }

    func testLiteralSegmentBeatsParameter() throws {
        XCTAssertEqual(try body(router.route(APIRequest(method: .GET, path: "/v1/policy/trace")))["route"], "trace")
        XCTAssertEqual(try body(router.route(APIRequest(method: .GET, path: "/v1/policy/other")))["route"], "policy")
    }

    func testUnknownPathIs404NamingThePath() throws {
        let response = router.route(APIRequest(method: .GET, path: "/v1/nope/1"))
        XCTAssertEqual(response.status, 404)
        XCTAssertEqual(try body(response), ["error": ["code": "not-found", "message": "no API path /v1/nope/1"]])
        XCTAssertEqual(router.route(APIRequest(method: .GET, path: "/v1/endpoint/1/2/3")).status, 404)
    }

    func testKnownPathOtherMethodIs405ListingAllowed() throws {
        let response = router.route(APIRequest(method: .PUT, path: "/v1/endpoint/3"))
        XCTAssertEqual(response.status, 405)
        let error = try body(response)["error"]
        XCTAssertEqual(error?["code"], "method-not-allowed")
        XCTAssertEqual(error?["message"], "method PUT is not allowed on /v1/endpoint/3; allowed: GET, DELETE, HEAD")
        XCTAssertEqual(response.headers["Allow"], "GET, DELETE, HEAD")
    }

    func testALiteralPathAnswersAsItsOtherSpellings() throws {
        // A path exactly as a literal pattern writes it is found by lookup; the same path spelled otherwise (a
        // trailing or doubled slash) goes through every route. Both must answer alike, for every method.
        for path in ["/v1/endpoint", "/v1/policy/trace", "/v1/fail"] {
            for method in HTTPMethod.allCases {
                let exact = router.route(APIRequest(method: method, path: path))
                for other in [path + "/", "/" + path, path.replacingOccurrences(of: "/v1/", with: "/v1//")] {
                    let spelled = router.route(APIRequest(method: method, path: other))
                    XCTAssertEqual(exact.status, spelled.status, "\(method.rawValue) \(path) and \(other)")
                    XCTAssertEqual(exact.headers["Allow"], spelled.headers["Allow"], "\(method.rawValue) \(path)")
                    if exact.status == 200 {
                        XCTAssertEqual(
                            try body(exact)["route"], try body(spelled)["route"], "\(method.rawValue) \(path)")
                    }
                }
            }
        }
        XCTAssertEqual(
            try body(router.route(APIRequest(method: .POST, path: "/v1/policy/trace")))["route"], "trace-post")
        XCTAssertEqual(router.route(APIRequest(method: .DELETE, path: "/v1/endpoint")).headers["Allow"], "GET, HEAD")
    }

    func testHeadFallsBackToGet() throws {
        let response = router.route(APIRequest(method: .HEAD, path: "/v1/endpoint"))
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(try body(response)["route"], "list")
    }

    func testAgentErrorIsRendered() throws {
        let response = router.route(APIRequest(method: .PUT, path: "/v1/fail"))
        XCTAssertEqual(response.status, 400)
        XCTAssertEqual(try body(response)["error"]?["field"], "x")
    }

    func testOtherErrorIsGeneric500AndReported() throws {
        let reported = Mutex<[String]>([])
        var router = self.router
        router.onUnexpectedError = { request, error in reported.withLock { $0.append("\(request.path) \(error)") } }
        let response = router.route(APIRequest(method: .POST, path: "/v1/boom"))
        XCTAssertEqual(response.status, 500)
        XCTAssertEqual(
            try body(response),
            ["error": ["code": "internal", "message": "internal error while handling POST /v1/boom"]])
        XCTAssertEqual(reported.withLock { $0 }, ["/v1/boom Boom()"])
    }

    func testPatternsListed() {
        let patterns = router.patterns
        XCTAssertEqual(patterns.count, 9)
        XCTAssertEqual(patterns[1].0, .GET)
        XCTAssertEqual(patterns[1].1, "/v1/endpoint/{id}")
    }
}

extension RouterTests {
    func testAllowedMethodsAndUnknownMethod() throws {
        XCTAssertEqual(router.allowedMethods(for: "/v1/endpoint/9"), [.GET, .DELETE, .HEAD])
        XCTAssertEqual(router.allowedMethods(for: "/v1/nothing"), [])
        let response = router.methodNotAllowed("OPTIONS", path: "/v1/endpoint")
        XCTAssertEqual(response.status, 405)
        XCTAssertEqual(
            try JSON.parse(response.body)["error"]?["message"],
            "method OPTIONS is not allowed on /v1/endpoint; allowed: GET, HEAD")
        XCTAssertEqual(router.methodNotAllowed("TRACE", path: "/v1/nothing").status, 404)
    }
}
