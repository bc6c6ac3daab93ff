import AgentAPI
import XCTest

@testable import Policy

/// Ingress HTTP rules compiled into per-port policies, checked as truth tables: (peer, request) -> verdict, decided
/// on the compiled form by walking its automata as the kernel does.
final class HTTPPolicyCompilerTests: XCTestCase {
    let client = Identity(id: 300, labels: labels("k8s:app=client", "k8s:io.kubernetes.pod.namespace=web-tier"))
    let admin = Identity(id: 301, labels: labels("k8s:app=admin", "k8s:io.kubernetes.pod.namespace=web-tier"))
    let server = Identity(id: 302, labels: labels("k8s:app=server", "k8s:io.kubernetes.pod.namespace=web-tier"))
    let stranger = Identity(id: 303, labels: labels("k8s:app=client", "k8s:io.kubernetes.pod.namespace=other"))

    private var identities: [Identity] { IdentityAllocator().identities + [client, admin, server, stranger] }

    /// The server's HTTP policies under rules with the given ingress items (each a JSON object's members).
    private func serverHTTP(
        _ items: [String], namedPorts: [NamedPort] = [], mode: EnforcementMode = .default, extra: String = ""
    ) throws -> [HTTPPortPolicy] {
        let sections = items.map { "{\($0)}" }.joined(separator: ", ")
        let spec = #"{"endpointSelector": {"matchLabels": {"app": "server"}}, "ingress": [\#(sections)]\#(extra)}"#
        let repo = try repository(policy(spec: spec))
        return repo.resolve(
            endpoint: server.labels, peers: PolicyPeers(identities), mode: mode, namedPorts: namedPorts
        ).http
    }

    private func toPorts(_ rules: String, port: String = "80") -> String {
        #""toPorts": [{"ports": [{"port": "\#(port)", "protocol": "TCP"}], "rules": {"http": \#(rules)}}]"#
    }

    private typealias Case = (peer: Identity, request: HTTPRequestHead, allowed: Bool)

    private func check(
        _ policy: HTTPPortPolicy, _ cases: [Case], file: StaticString = #filePath, line: UInt = #line
    ) {
        for (peer, request, allowed) in cases {
            let decision = policy.decide(identity: peer.id, request: request)
            XCTAssertEqual(
                decision.allowed, allowed, "\(peer.id) \(request.method) \(request.path) \(request.host): \(decision)",
                file: file, line: line)
        }
    }

    private func get(_ path: String, host: String = "", headers: [(name: String, value: String)] = [])
        -> HTTPRequestHead
    {
        HTTPRequestHead(method: "GET", path: path, host: host, headers: headers)
    }

    func testRulesOfAnItemApplyToItsPeers() throws {
        let http = try serverHTTP([
            #""fromEndpoints": [{"matchLabels": {"app": "client"}}], "#
                + toPorts(#"[{"method": "GET", "path": "/public/.*"}, {"method": "PUT|POST", "path": "/v[0-9]+"}]"#)
        ])
        XCTAssertEqual(http.map(\.port), [80])
        XCTAssertEqual(http[0].rules.count, 2)
        XCTAssertEqual(http[0].peers, [client.id: .rules(0b11)])
        check(
            http[0],
            [
                (client, get("/public/a"), true),
                (client, get("/public"), false),
                (client, HTTPRequestHead(method: "POST", path: "/v2"), true),
                (client, HTTPRequestHead(method: "POST", path: "/v2/x"), false),
                (client, HTTPRequestHead(method: "DELETE", path: "/v2"), false),
                (admin, get("/public/a"), false),
                (stranger, get("/public/a"), false),
            ])
    }

    func testAnAllowWithoutHTTPRulesMakesItsPeersUnrestricted() throws {
        let http = try serverHTTP([
            toPorts(#"[{"path": "/health"}]"#),
            #""fromEndpoints": [{"matchLabels": {"app": "admin"}}], "toPorts": [{"ports": [{"port": "80"}]}]"#,
            // A UDP allow on the same number does not open TCP requests.
            #""fromEndpoints": [{"matchLabels": {"app": "client"}}], "#
                + #""toPorts": [{"ports": [{"port": "80", "protocol": "UDP"}]}]"#,
        ])
        XCTAssertEqual(http.count, 1)
        XCTAssertEqual(http[0].peers[0], .rules(1))
        XCTAssertEqual(http[0].peers[admin.id], .unrestricted)
        check(
            http[0],
            [
                (admin, get("/anything"), true),
                (client, get("/health"), true),
                (client, get("/anything"), false),
                (stranger, get("/health"), true),
            ])
    }

    func testAPeerOnlyItemCoversEveryPortUnrestricted() throws {
        let http = try serverHTTP([
            #""fromEndpoints": [{}], "# + toPorts(#"[{"method": "GET"}]"#),
            #""fromEndpoints": [{"matchLabels": {"app": "admin"}}]"#,
        ])
        check(
            http[0],
            [
                (admin, HTTPRequestHead(method: "DELETE", path: "/"), true),
                (client, HTTPRequestHead(method: "DELETE", path: "/"), false),
                (client, get("/"), true),
            ])
    }

    func testPerRuleFromEndpointsNarrowsTheRule() throws {
        let http = try serverHTTP([
            // Any peer (ports only); the second rule is narrowed to the admin.
            toPorts(
                #"""
                [{"method": "GET"},
                 {"method": "POST", "fromEndpoints": [{"matchLabels": {"app": "admin"}}]}]
                """#),
            // Item peers: clients of any namespace; the rule narrows to web-tier's.
            #""fromEndpoints": [{"matchLabels": {"app": "client", "k8s:io.kubernetes.pod.namespace": "other"}},"#
                + #"{"matchLabels": {"app": "client"}}], "#
                + toPorts(#"[{"method": "PATCH", "fromEndpoints": [{"matchLabels": {"app": "client"}}]}]"#),
        ])
        let post = HTTPRequestHead(method: "POST", path: "/")
        let patch = HTTPRequestHead(method: "PATCH", path: "/")
        XCTAssertEqual(http[0].peers[0], .rules(0b1))
        check(
            http[0],
            [
                (client, get("/"), true), (stranger, get("/"), true),
                (admin, post, true), (client, post, false), (stranger, post, false),
                (client, patch, true), (stranger, patch, false), (admin, patch, false),
            ])
    }

    func testIdenticalRulesOfTwoPoliciesShareOneBit() throws {
        let rule = #"[{"method": "GET", "path": "/a", "headers": ["X-Team"]}]"#
        let repo = try repository(
            policy(
                "first",
                spec: #"{"endpointSelector": {"matchLabels": {"app": "server"}}, "ingress": [{"#
                    + #""fromEndpoints": [{"matchLabels": {"app": "client"}}], \#(toPorts(rule))}]}"#),
            policy(
                "second",
                spec: #"{"endpointSelector": {"matchLabels": {"app": "server"}}, "ingress": [{"#
                    + #""fromEndpoints": [{"matchLabels": {"app": "admin"}}], \#(toPorts(rule))}]}"#))
        let http = repo.resolve(endpoint: server.labels, identities: identities, mode: .default).http
        XCTAssertEqual(http[0].rules.count, 1)
        XCTAssertEqual(repo.ruleName(http[0].rules[0].ruleID), "web-tier/first ingress[0]")
        XCTAssertEqual(http[0].peers, [client.id: .rules(1), admin.id: .rules(1)])
    }

    func testHeadersAndHost() throws {
        let http = try serverHTTP([
            toPorts(
                #"""
                [{"host": "api\\.example\\.com(:8080)?", "headers": ["X-Team"],
                  "headerMatches": [{"name": "Authorization", "value": "Bearer 42"}]}]
                """#)
        ])
        let host = "api.example.com"
        check(
            http[0],
            [
                (client, get("/", host: host, headers: [("x-team", "a"), ("AUTHORIZATION", "Bearer 42")]), true),
                (
                    client, get("/", host: host + ":8080", headers: [("X-Team", ""), ("Authorization", "Bearer 42")]),
                    true
                ),
                (client, get("/", host: host, headers: [("X-Team", "a"), ("Authorization", "Bearer 43")]), false),
                (client, get("/", host: host, headers: [("Authorization", "Bearer 42")]), false),
                (
                    client, get("/", host: "evil.com", headers: [("X-Team", "a"), ("Authorization", "Bearer 42")]),
                    false
                ),
                (client, get("/", headers: [("X-Team", "a"), ("Authorization", "Bearer 42")]), false),
            ])
    }

    func testNamedPortResolvesOnTheEndpoint() throws {
        let rules = #""toPorts": [{"ports": [{"port": "web", "protocol": "TCP"}], "rules": {"http": [{"path": "/"}]}}]"#
        let named = try serverHTTP([rules], namedPorts: [NamedPort(name: "web", port: 8080, proto: .tcp)])
        XCTAssertEqual(named.map(\.port), [8080])
        check(named[0], [(client, get("/"), true), (client, get("/x"), false)])
        XCTAssertEqual(try serverHTTP([rules], namedPorts: []), [])
        // A UDP port of that name is not an HTTP port.
        XCTAssertEqual(try serverHTTP([rules], namedPorts: [NamedPort(name: "web", port: 8080, proto: .udp)]), [])
    }

    func testUnenforcedIngressHasNoHTTPPolicy() throws {
        let item = toPorts(#"[{"method": "GET"}]"#)
        XCTAssertEqual(try serverHTTP([item], mode: .never), [])
        // Every selecting rule opted out of default deny, and a deny makes ingress enforced: whatever is not denied
        // passes, requests included.
        let open = try serverHTTP(
            [item], extra: #", "enableDefaultDeny": {"ingress": false}, "ingressDeny": [{"fromCIDR": ["10.9.0.0/16"]}]"#
        )
        XCTAssertEqual(open.first?.peers[0], .unrestricted)
        check(open[0], [(client, HTTPRequestHead(method: "DELETE", path: "/"), true)])
    }

    func testMoreThanSixtyFourRulesKeepTheFirstAndFailClosed() throws {
        let first = (0..<40).map { #"{"path": "/a\#($0)"}"# }.joined(separator: ",")
        let second = (0..<40).map { #"{"path": "/b\#($0)"}"# }.joined(separator: ",")
        let http = try serverHTTP([toPorts("[\(first)]"), toPorts("[\(second)]")])
        XCTAssertEqual(http[0].rules.count, 64)
        check(http[0], [(client, get("/a39"), true), (client, get("/b23"), true), (client, get("/b24"), false)])
    }
}
