import AgentAPI
import NodeCtlKit
import XCTest

/// AgentClient: the request each route sends and how answers and errors come back.
final class NodeCtlKitAgentClientTests: XCTestCase {
    /// A server answering `body` (status 200) to everything; returns it and a client for it.
    private func serve(_ body: String, status: Int = 200, reason: String = "OK") throws
        -> (NodeCtlKitFakeServer, AgentClient)
    {
        let server = try NodeCtlKitFakeServer(
            response: NodeCtlKitFakeServer.jsonResponse(body, status: status, reason: reason), pieces: 2)
        addTeardownBlock { server.stop() }
        return (server, AgentClient(socketPath: server.path))
    }

    func testHealthzDecodesJSON() throws {
        let (server, client) = try serve(#"{"status":"ok","endpoints":3,"bpffs":{"mounted":true}}"#)
        let health = try client.healthz()
        XCTAssertEqual(health, ["status": "ok", "endpoints": 3, "bpffs": ["mounted": true]])
        XCTAssertEqual(server.requests.map(\.target), ["/v1/healthz"])
        XCTAssertEqual(server.requests.first?.method, "GET")
    }

    func testAgentErrorComesBackWithCodeMessageAndField() throws {
        let body =
            #"{"error":{"code":"invalid-field","message":"log-level: expected one of debug, info","#
            + #""field":"log-level"}}"#
        let (server, client) = try serve(body, status: 400, reason: "Bad Request")

        XCTAssertThrowsError(try client.patchConfig(["log-level": "loud"])) { error in
            let expected = AgentError(
                code: .invalidField, status: 400, message: "log-level: expected one of debug, info", field: "log-level")
            XCTAssertEqual(error as? ClientError, .server(expected))
            XCTAssertEqual("\(error)", "log-level: expected one of debug, info")
        }
        let request = try XCTUnwrap(server.requests.first)
        XCTAssertEqual(request.method, "PATCH")
        XCTAssertEqual(try JSON.parse(request.body), ["log-level": "loud"])
    }

    func testNonAgentErrorBodyStillSaysWhatCameBack() throws {
        let server = try NodeCtlKitFakeServer(
            response: "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 13\r\n\r\nupstream down")
        defer { server.stop() }

        XCTAssertThrowsError(try AgentClient(socketPath: server.path).maps()) { error in
            guard case .server(let agentError) = error as? ClientError else { return XCTFail("\(error)") }
            XCTAssertEqual(agentError.status, 502)
            XCTAssertEqual(agentError.code, .internal)
            XCTAssertEqual(agentError.message, "agent answered 502 Bad Gateway: upstream down")
        }
    }

    func testSuccessWithInvalidJSONIsMalformed() throws {
        let (_, client) = try serve("not json")
        XCTAssertThrowsError(try client.config()) { error in
            guard case .malformedResponse(let what) = error as? ClientError else { return XCTFail("\(error)") }
            XCTAssertTrue(what.hasPrefix("GET /v1/config answered 200 with invalid JSON at line 1"), what)
        }
    }

    func testLabelFilterIsPercentEncoded() throws {
        let (server, client) = try serve("[]")
        XCTAssertEqual(try client.endpoints(labels: ["k8s:app=x", "k8s:team=a b+c"]), [])
        XCTAssertEqual(try client.identities(), [])
        XCTAssertEqual(
            server.requests.map(\.target),
            ["/v1/endpoint?labels=k8s:app%3Dx,k8s:team%3Da%20b%2Bc", "/v1/identity"])
    }

    func testPolicyRoutes() throws {
        let (server, client) = try serve(#"{"revision":9}"#)
        _ = try client.putPolicy([["metadata": ["name": "a"]]])
        _ = try client.policies()
        _ = try client.deletePolicies(.one(namespace: "web-tier", name: "allow-x"))
        _ = try client.deletePolicies(.one(namespace: "web-tier", name: "allow-x", kind: "NetworkPolicy"))
        _ = try client.deletePolicies(.namespace("api-tier"))
        _ = try client.deletePolicies(.all)
        _ = try client.tracePolicy(
            TraceRequest(source: "web-tier/frontend-0", destination: "10.0.1.7", port: 8080, transport: "TCP"))

        XCTAssertEqual(
            server.requests.map { "\($0.method) \($0.target)" },
            [
                "PUT /v1/policy",
                "GET /v1/policy",
                "DELETE /v1/policy?namespace=web-tier&name=allow-x",
                "DELETE /v1/policy?namespace=web-tier&name=allow-x&kind=NetworkPolicy",
                "DELETE /v1/policy?namespace=api-tier",
                "DELETE /v1/policy?all=true",
                "GET /v1/policy/trace?src=web-tier/frontend-0&dst=10.0.1.7&dport=8080&protocol=TCP",
            ])
        XCTAssertEqual(try JSON.parse(server.requests[0].body), [["metadata": ["name": "a"]]])
    }

    func testEndpointRoutes() throws {
        let server = try NodeCtlKitFakeServer { request in
            let status = request.method == "PUT" ? "201 Created" : "200 OK"
            let body = #"{"id":12}"#
            return [.send(Array("HTTP/1.1 \(status)\r\nContent-Length: \(body.count)\r\n\r\n\(body)".utf8))]
        }
        defer { server.stop() }
        let client = AgentClient(socketPath: server.path)

        let put = try client.putEndpoint(id: 12, ["interface-name": "lxc1"])
        XCTAssertTrue(put.created)
        XCTAssertEqual(put.endpoint, ["id": 12])
        _ = try client.endpoint(id: 12)
        _ = try client.patchEndpointLabels(id: 12, add: ["k8s:a=b"], delete: ["k8s:c=d"])
        _ = try client.replaceEndpointLabels(id: 12, labels: ["k8s:e=f"])
        _ = try client.endpointPolicy(id: 12)
        _ = try client.deleteEndpoint(id: 12)

        XCTAssertEqual(
            server.requests.map { "\($0.method) \($0.target)" },
            [
                "PUT /v1/endpoint/12", "GET /v1/endpoint/12", "PATCH /v1/endpoint/12/labels",
                "PATCH /v1/endpoint/12/labels", "GET /v1/endpoint/12/policy", "DELETE /v1/endpoint/12",
            ])
        XCTAssertEqual(try JSON.parse(server.requests[2].body), ["add": ["k8s:a=b"], "delete": ["k8s:c=d"]])
        XCTAssertEqual(try JSON.parse(server.requests[3].body), ["labels": ["k8s:e=f"]])
    }

    func testEmptySuccessBodyIsNull() throws {
        let server = try NodeCtlKitFakeServer(response: "HTTP/1.1 204 No Content\r\n\r\n")
        defer { server.stop() }
        XCTAssertEqual(try AgentClient(socketPath: server.path).deleteEndpoint(id: 3), .null)
    }

    // MARK: Map paging

    /// A fake map of `total` entries served in pages of at most `limit`, cursors being the next index in hex.
    private func mapServer(total: Int) throws -> NodeCtlKitFakeServer {
        try NodeCtlKitFakeServer { request in
            let query = Self.query(request.target)
            let start = query["cursor"].flatMap { Int($0, radix: 16) } ?? 0
            let limit = query["limit"].flatMap { Int($0) } ?? 1000
            let end = min(total, start + limit)
            let entries = (start..<end).map { i in
                JSON.object(["key": ["index": .int(Int64(i))], "value": ["flags": 0]])
            }
            let next: JSON = end < total ? .string(String(end, radix: 16)) : .null
            let body: JSON = ["name": "na_test", "entries": .array(entries), "next-cursor": next]
            return [.send(Array(NodeCtlKitFakeServer.jsonResponse(body.serialized()).utf8))]
        }
    }

    private static func query(_ target: String) -> [String: String] {
        guard let q = target.split(separator: "?", maxSplits: 1).dropFirst().first else { return [:] }
        var result: [String: String] = [:]
        for pair in q.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            result[String(kv[0])] = kv.count > 1 ? String(kv[1]) : ""
        }
        return result
    }

    func testMapEntriesFollowsCursorsToTheEnd() throws {
        let server = try mapServer(total: 5)
        defer { server.stop() }

        let result = try AgentClient(socketPath: server.path).mapEntries(named: "na_test", pageSize: 2)

        let indexes = result["entries"]?.arrayValue?.compactMap { $0["key"]?["index"]?.intValue }
        XCTAssertEqual(indexes, [0, 1, 2, 3, 4])
        XCTAssertEqual(result["next-cursor"], .null)
        XCTAssertEqual(
            server.requests.map(\.target),
            ["/v1/map/na_test?limit=2", "/v1/map/na_test?limit=2&cursor=2", "/v1/map/na_test?limit=2&cursor=4"])
    }

    func testMapEntriesStopsAtLimitAndKeepsTheCursor() throws {
        let server = try mapServer(total: 10)
        defer { server.stop() }

        let result = try AgentClient(socketPath: server.path).mapEntries(named: "na_test", limit: 3, pageSize: 2)

        XCTAssertEqual(result["entries"]?.arrayValue?.count, 3)
        XCTAssertEqual(result["next-cursor"], "3")
        XCTAssertEqual(
            server.requests.map(\.target), ["/v1/map/na_test?limit=2", "/v1/map/na_test?limit=1&cursor=2"])
    }

    func testRepeatedCursorIsAnErrorNotALoop() throws {
        let (_, client) = try serve(#"{"name":"m","entries":[{"key-hex":"00","value-hex":"01"}],"next-cursor":"aa"}"#)
        XCTAssertThrowsError(try client.mapEntries(named: "m")) {
            XCTAssertEqual($0 as? ClientError, .malformedResponse("GET /v1/map/m: cursor aa repeated"))
        }
    }
}
