import AgentAPI

/// Routes shared by the server tests.
enum TestRoutes {
    /// GET /v1/hello, PUT /v1/echo/{id} (parses the body), POST /v1/size (counts the body), GET /v1/request
    /// (reports query, headers and peer), GET /v1/fail (a non-API error).
    static var basic: [Route] {
        [
            .get("/v1/hello") { _ in .json(["hello": "world"]) },
            .put("/v1/echo/{id}") { request in
                let body = try request.jsonBody()
                return .json(["id": .string(try request.pathParameter("id")), "body": body], status: 201)
            },
            .post("/v1/size") { request in .json(["bytes": JSON(request.body.count)]) },
            .get("/v1/request") { request in
                .json([
                    "query": .object(request.query.mapValues(JSON.string)),
                    "x-test": JSON(request.header("X-Test")),
                    "peer": request.peer.map { ["uid": JSON($0.uid), "gid": JSON($0.gid), "pid": JSON($0.pid)] } ?? nil,
                ])
            },
            .get("/v1/fail") { _ in throw TestFailure() },
        ]
    }

    struct TestFailure: Error {}
}
