import AgentAPI
import NodeCtlKit
import XCTest

@testable import Policy

/// `toPorts[].rules.http`: what is read, and everything refused with the field it is in.
final class HTTPPolicyParserTests: XCTestCase {
    /// The seed article's `l7-policy-backend-api.yaml`, as written.
    static let seedYAML = """
        apiVersion: "cilium.io/v2"
        kind: CiliumNetworkPolicy
        metadata:
          name: "l7-policy-for-backend-api"
          namespace: api-tier
        spec:
          endpointSelector:
            matchLabels:
              app: backend-api
          ingress:
          - fromEndpoints:
            - matchLabels:
                # Allow from any pod in the web-tier namespace
                "k8s:io.kubernetes.pod.namespace": web-tier
            - matchLabels:
                # Also allow from any pod with the admin-tool role
                role: admin-tool
            toPorts:
            - ports:
              - port: "8080"
                protocol: TCP
              rules:
                http:
                # Rule 1: Allow GET to public paths from anyone allowed by fromEndpoints
                - method: "GET"
                  path: "/api/v1/public/.*"
                # Rule 2: Restrict POST to admin paths to only the admin tool
                - method: "POST"
                  path: "/api/v1/admin/.*"
                  fromEndpoints:
                  - matchLabels:
                      role: "admin-tool"
        """

    /// A rule in namespace web-tier selecting app=server with one ingress item: `item` is its JSON members.
    private func ingress(_ item: String) -> String {
        policy(spec: #"{"endpointSelector": {"matchLabels": {"app": "server"}}, "ingress": [{\#(item)}]}"#)
    }

    private func http(_ rules: String, ports: String = #"[{"port": "8080", "protocol": "TCP"}]"#) -> String {
        ingress(#""toPorts": [{"ports": \#(ports), "rules": {"http": \#(rules)}}]"#)
    }

    func testSeedPolicyParsesFromItsYAML() throws {
        let documents = try PolicyFiles.documents(from: Array(Self.seedYAML.utf8), source: "l7-policy-backend-api.yaml")
        XCTAssertEqual(documents.count, 1)
        let parsed = try PolicyParser.parse(documents[0])
        XCTAssertEqual(parsed.map(\.key.description), ["api-tier/l7-policy-for-backend-api"])
        let item = try XCTUnwrap(parsed[0].rules[0].ingress?.first)
        let port = try XCTUnwrap(item.ports?.first)
        XCTAssertEqual(port.port, 8080)
        XCTAssertEqual(port.proto, .tcp)
        let rules = try XCTUnwrap(port.http)
        XCTAssertEqual(rules.map { $0.method?.source }, ["GET", "POST"])
        XCTAssertEqual(rules.map { $0.path?.source }, ["/api/v1/public/.*", "/api/v1/admin/.*"])
        XCTAssertNil(rules[0].endpoints)
        // The rule's own selector gets the policy's namespace, as the item's selectors do.
        let narrowed = try XCTUnwrap(rules[1].endpoints?.first)
        XCTAssertTrue(narrowed.matches(labels("k8s:role=admin-tool", "k8s:io.kubernetes.pod.namespace=api-tier")))
        XCTAssertFalse(narrowed.matches(labels("k8s:role=admin-tool", "k8s:io.kubernetes.pod.namespace=web-tier")))
        XCTAssertTrue(rules[1].path!.automaton.matches(Array("/api/v1/admin/users".utf8)))
    }

    func testFieldsAreRead() throws {
        let text = http(
            #"""
            [{"method": "GET|HEAD", "path": "/v[12]/.*", "host": "api\\.example\\.com",
              "headers": ["X-Team", "X-Env: prod"],
              "headerMatches": [{"name": "Authorization", "value": "Bearer t"}, {"name": "X-Id", "mismatch": "FAIL"}]},
             {"method": "", "path": ""}]
            """#)
        let rules = try XCTUnwrap(PolicyParser.parse(JSON.parse(text))[0].rules[0].ingress?[0].ports?[0].http)
        XCTAssertEqual(rules.count, 2)
        XCTAssertEqual(rules[0].host?.source, "api\\.example\\.com")
        XCTAssertEqual(
            rules[0].headers,
            [
                HTTPHeaderRequirement(name: "x-team"), HTTPHeaderRequirement(name: "x-env", value: "prod"),
                HTTPHeaderRequirement(name: "authorization", value: "Bearer t"), HTTPHeaderRequirement(name: "x-id"),
            ])
        // Empty regexes are unset, as in Cilium: the rule allows every request.
        XCTAssertEqual(rules[1], HTTPRule())
    }

    func testNamedTCPPortTakesHTTPRules() throws {
        let text = http(#"[{"method": "GET"}]"#, ports: #"[{"port": "web", "protocol": "TCP"}]"#)
        let port = try XCTUnwrap(PolicyParser.parse(JSON.parse(text))[0].rules[0].ingress?[0].ports?[0])
        XCTAssertEqual(port.name, "web")
        XCTAssertEqual(port.http?.count, 1)
    }

    func testRefusals() {
        let toPorts = "spec.ingress[0].toPorts[0]"
        let cases: [(text: String, field: String, says: String)] = [
            (http(#"[{"method": "GE(T"}]"#), "\(toPorts).rules.http[0].method", "regex \"GE(T\": missing )"),
            (http(#"[{"path": "/a(?=b)"}]"#), "\(toPorts).rules.http[0].path", "lookahead"),
            (http(#"[{"host": "(?i)x"}]"#), "\(toPorts).rules.http[0].host", "flags (?i)"),
            (http(#"[{"path": 7}]"#), "\(toPorts).rules.http[0].path", "expected a string"),
            (http(#"[{"verb": "GET"}]"#), "\(toPorts).rules.http[0].verb", "unknown field"),
            (http("[]"), "\(toPorts).rules.http", "at least one HTTP rule"),
            (
                http("[" + Array(repeating: "{}", count: 65).joined(separator: ",") + "]"), "\(toPorts).rules.http",
                "at most 64"
            ),
            (
                http(#"[{"headerMatches": [{"name": "X", "value": "v", "mismatch": "LOG"}]}]"#),
                "\(toPorts).rules.http[0].headerMatches[0].mismatch", "mismatch \"LOG\" is not supported"
            ),
            (
                http(#"[{"headerMatches": [{"name": "X", "secret": {"name": "s"}}]}]"#),
                "\(toPorts).rules.http[0].headerMatches[0].secret", "secret"
            ),
            (http(#"[{"headers": ["Bad/Name"]}]"#), "\(toPorts).rules.http[0].headers[0]", "not a valid HTTP field"),
            (
                http(#"[{"headers": ["A", "B", "C", "D", "E"]}]"#), "\(toPorts).rules.http[0]",
                "at most 4"
            ),
            (
                http(#"[{"headerMatches": [{"name": "X", "value": "\#(String(repeating: "v", count: 129))"}]}]"#),
                "\(toPorts).rules.http[0].headerMatches[0].value", "at most 128"
            ),
            (
                http(#"[{"headerMatches": [{"name": "X", "value": "v "}]}]"#),
                "\(toPorts).rules.http[0].headerMatches[0].value", "must not start or end with whitespace"
            ),
            (
                ingress(#""toPorts": [{"ports": [{"port": "53"}], "rules": {"dns": [{"matchName": "x"}]}}]"#),
                "\(toPorts).rules.dns", "dns rules are not supported"
            ),
            (
                ingress(#""toPorts": [{"ports": [{"port": "9092"}], "rules": {"kafka": [{}]}}]"#),
                "\(toPorts).rules.kafka", "kafka rules are not supported"
            ),
            (
                ingress(#""toPorts": [{"ports": [{"port": "9"}], "rules": {"l7proto": "x", "l7": []}}]"#),
                "\(toPorts).rules.l7", "l7 (generic L7 rules)"
            ),
            (http("[{}]", ports: #"[{"port": "8080"}]"#), "\(toPorts).ports[0]", "protocol ANY"),
            (http("[{}]", ports: #"[{"port": "53", "protocol": "UDP"}]"#), "\(toPorts).ports[0]", "not UDP"),
            (
                http("[{}]", ports: #"[{"port": "80", "endPort": 90, "protocol": "TCP"}]"#), "\(toPorts).ports[0]",
                "port range (80-90)"
            ),
            (http("[{}]", ports: #"[{"protocol": "TCP"}]"#), "\(toPorts).ports[0]", "need a port"),
            (
                ingress(#""toPorts": [{"ports": [{"port": "443"}], "terminatingTLS": {}}]"#),
                "\(toPorts).terminatingTLS", "TLS termination"
            ),
            (
                policy(
                    spec: #"""
                        {"endpointSelector": {}, "egress": [{"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}],
                         "rules": {"http": [{}]}}]}]}
                        """#), "spec.egress[0].toPorts[0].rules", "enforced on the server side"
            ),
            (
                policy(
                    spec: #"""
                        {"endpointSelector": {}, "ingressDeny": [{"toPorts": [{"ports": [{"port": "80",
                         "protocol": "TCP"}], "rules": {"http": [{}]}}]}]}
                        """#), "spec.ingressDeny[0].toPorts[0].rules", "not allowed in ingressDeny"
            ),
        ]
        for (text, field, says) in cases {
            guard let error = parseError(text) else { continue }
            XCTAssertEqual(error.status, 400, text)
            XCTAssertEqual(error.field, field, error.message)
            XCTAssertTrue(error.message.contains(says), "\(error.message) should say \(says)")
        }
    }
}
