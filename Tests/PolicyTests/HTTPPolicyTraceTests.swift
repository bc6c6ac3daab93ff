import AgentAPI
import XCTest

@testable import Policy

/// Traces to a port with HTTP rules, and the HTTP policy as the endpoint policy route shows it.
final class HTTPPolicyTraceTests: XCTestCase {
    let client = Identity(id: 300, labels: labels("k8s:app=client", "k8s:io.kubernetes.pod.namespace=web-tier"))
    let admin = Identity(id: 301, labels: labels("k8s:app=admin", "k8s:io.kubernetes.pod.namespace=web-tier"))
    let server = Identity(id: 302, labels: labels("k8s:app=server", "k8s:io.kubernetes.pod.namespace=web-tier"))

    private func repo() throws -> PolicyRepository {
        try repository(
            policy(
                "l7",
                spec: #"""
                    {"endpointSelector": {"matchLabels": {"app": "server"}}, "ingress": [
                      {"fromEndpoints": [{"matchLabels": {"app": "client"}}],
                       "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}],
                                    "rules": {"http": [{"method": "GET", "path": "/public/.*"},
                                                       {"method": "POST", "headers": ["X-Token: 7"]}]}}]},
                      {"fromEndpoints": [{"matchLabels": {"app": "admin"}}]}]}
                    """#))
    }

    private func trace(
        _ repo: PolicyRepository, from source: Identity, port: UInt16 = 80, proto: UInt8 = 6,
        request: HTTPRequestHead? = nil
    ) -> TraceResult {
        repo.trace(
            from: TracePeer(identity: source.id, labels: source.labels, isLocalEndpoint: false),
            to: TracePeer(identity: server.id, labels: server.labels), proto: proto, dport: port,
            identities: [client, admin, server], mode: .default, request: request)
    }

    func testRequestsAreDecidedAfterTheConnection() throws {
        let repo = try repo()
        let allowed = trace(repo, from: client, request: HTTPRequestHead(method: "GET", path: "/public/a"))
        XCTAssertEqual(allowed.verdict, .allowed)
        XCTAssertEqual(allowed.http?.decision?.rule, 0)
        XCTAssertTrue(
            allowed.reason.hasSuffix(
                "HTTP: allowed by HTTP rule 0 of web-tier/l7 ingress[0] (method=GET path=/public/.*)"),
            allowed.reason)

        let denied = trace(repo, from: client, request: HTTPRequestHead(method: "POST", path: "/"))
        XCTAssertEqual(denied.verdict, .denied)
        XCTAssertEqual(denied.ingress.decision.verdict, .allowed)
        XCTAssertTrue(denied.reason.hasPrefix("HTTP policy of the destination: denied: none of the 2"), denied.reason)
        XCTAssertEqual(denied.json["http"]?["verdict"], "denied")
        XCTAssertEqual(denied.json["http"]?["request"], ["method": "POST", "path": "/", "host": ""])

        let withHeader = HTTPRequestHead(method: "POST", path: "/", headers: [("x-token", "7")])
        XCTAssertEqual(trace(repo, from: client, request: withHeader).verdict, .allowed)

        let unrestricted = trace(repo, from: admin, request: HTTPRequestHead(method: "DELETE", path: "/"))
        XCTAssertEqual(unrestricted.verdict, .allowed)
        XCTAssertEqual(unrestricted.json["http"]?["unrestricted"], true)
    }

    func testWithoutARequestTheRulesAreShown() throws {
        let result = trace(try repo(), from: client)
        XCTAssertEqual(result.verdict, .allowed)
        let rules = try XCTUnwrap(result.json["http"]?["rules"]?.arrayValue)
        XCTAssertEqual(rules.map { $0["method"] }, ["GET", "POST"])
        XCTAssertEqual(rules[1]["headers"], ["x-token: 7"])
        XCTAssertNil(result.json["http"]?["verdict"])
        // Another port, or UDP: no HTTP part.
        XCTAssertNil(trace(try repo(), from: admin, port: 81).http)
        XCTAssertNil(trace(try repo(), from: client, proto: 17).http)
    }

    func testEndpointViewJSON() throws {
        let repo = try repo()
        let policy = repo.resolve(endpoint: server.labels, identities: [client, admin, server], mode: .default)
        let json = try XCTUnwrap(policy.http.first).json(ruleName: repo.ruleName)
        XCTAssertEqual(json["port"], 80)
        XCTAssertEqual(
            json["rules"]?[0],
            [
                "index": 0, "rule-id": .int(Int64(policy.http[0].rules[0].ruleID)), "rule": "web-tier/l7 ingress[0]",
                "method": "GET", "path": "/public/.*", "headers": [],
            ])
        XCTAssertEqual(
            json["peers"],
            [["identity": 300, "access": "rules", "rules": [0, 1]], ["identity": 301, "access": "unrestricted"]])
    }
}
