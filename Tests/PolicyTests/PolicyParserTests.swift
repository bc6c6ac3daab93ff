import AgentAPI
import XCTest

@testable import Policy

final class PolicyParserTests: XCTestCase {
    /// Each case: a spec, the field the error must name, and words its message must contain.
    private func assertRejected(
        spec: String, field: String, _ reason: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        guard let error = parseError(policy("allow-x", spec: spec), file: file, line: line) else { return }
        XCTAssertEqual(error.code, .invalidField, file: file, line: line)
        XCTAssertEqual(error.status, 400, file: file, line: line)
        XCTAssertEqual(error.field, field, error.message, file: file, line: line)
        XCTAssertTrue(error.message.hasPrefix("web-tier/allow-x: \(field): "), error.message, file: file, line: line)
        XCTAssertTrue(error.message.contains(reason), error.message, file: file, line: line)
    }

    private let selector = #""endpointSelector": {"matchLabels": {"app": "frontend"}}"#

    func testUnsupportedPeerFieldsAreRejectedByName() {
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toFQDNs": [{"matchName": "example.com"}]}]}"#,
            field: "spec.egress[0].toFQDNs", "toFQDNs (DNS-name peers) is not supported")
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toServices": [{"k8sServiceSelector": {"selector": {}}}]}]}"#,
            field: "spec.egress[0].toServices[0].k8sServiceSelector", "k8sServiceSelector is not supported")
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toServices": [{"k8sService": {"serviceName": ""}}]}]}"#,
            field: "spec.egress[0].toServices[0].k8sService.serviceName", "must not be empty")
        assertRejected(
            spec: #"{\#(selector), "ingress": [{"toServices": [{"k8sService": {"serviceName": "x"}}]}]}"#,
            field: "spec.ingress[0].toServices", "unknown field \"toServices\"")
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toGroups": [{"aws": {}}]}]}"#,
            field: "spec.egress[0].toGroups", "toGroups")
        assertRejected(
            spec: #"{\#(selector), "ingress": [{"fromRequires": [{}]}]}"#,
            field: "spec.ingress[0].fromRequires", "fromRequires is not supported")
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toRequires": [{}]}]}"#,
            field: "spec.egress[0].toRequires", "toRequires is not supported")
        assertRejected(
            spec: #"{\#(selector), "ingress": [{"icmps": [{"fields": [{"type": 8}]}]}]}"#,
            field: "spec.ingress[0].icmps", "icmps")
        assertRejected(
            spec: #"{\#(selector), "ingress": [{"fromEndpoints": [{}], "authentication": {"mode": "required"}}]}"#,
            field: "spec.ingress[0].authentication", "authentication")
        assertRejected(
            spec: #"{\#(selector), "ingress": [{"toEndpoints": [{}]}]}"#,
            field: "spec.ingress[0].toEndpoints", "unknown field \"toEndpoints\"; ingress items use fromEndpoints")
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toEndpoints": [{}], "whatever": 1}]}"#,
            field: "spec.egress[0].whatever", "unknown field \"whatever\"")
    }

    func testL7AndTLSFieldsInToPortsAreRejected() {
        let ports = #""ports": [{"port": "80", "protocol": "TCP"}]"#
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toPorts": [{\#(ports), "rules": {"http": [{"method": "GET"}]}}]}]}"#,
            field: "spec.egress[0].toPorts[0].rules", "egress HTTP rules are not supported")
        assertRejected(
            spec: #"{\#(selector), "egressDeny": [{"toPorts": [{\#(ports), "rules": {"http": [{}]}}]}]}"#,
            field: "spec.egressDeny[0].toPorts[0].rules", "not allowed in egressDeny")
        for key in ["originatingTLS", "terminatingTLS", "serverNames", "listener"] {
            assertRejected(
                spec: #"{\#(selector), "egress": [{"toPorts": [{\#(ports), "\#(key)": {}}]}]}"#,
                field: "spec.egress[0].toPorts[0].\(key)", "\(key)")
        }
    }

    func testBadPortsAndProtocols() {
        func ports(_ list: String) -> String { #"{\#(selector), "egress": [{"toPorts": [{"ports": \#(list)}]}]}"# }
        let field = "spec.egress[0].toPorts[0].ports[0]"
        assertRejected(spec: ports(#"[{"port": "Http"}]"#), field: "\(field).port", "port name \"Http\" must be")
        assertRejected(
            spec: ports(#"[{"port": "http", "endPort": 90}]"#), field: "\(field).endPort", "cannot follow a named port")
        assertRejected(spec: ports(#"[{"port": "70000"}]"#), field: "\(field).port", "out of range")
        assertRejected(spec: ports(#"[{"port": 70000}]"#), field: "\(field).port", "out of range")
        assertRejected(spec: ports(#"[{"port": -1}]"#), field: "\(field).port", "out of range")
        assertRejected(spec: ports(#"[{"port": "-1"}]"#), field: "\(field).port", "port name \"-1\"")
        assertRejected(spec: ports(#"[{"port": 80.5}]"#), field: "\(field).port", "expected a whole port number")
        assertRejected(spec: ports(#"[{"port": true}]"#), field: "\(field).port", "expected a whole port number")
        assertRejected(
            spec: ports(#"[{"port": "80", "protocol": "ICMP"}]"#), field: "\(field).protocol",
            "protocol \"ICMP\" is not supported (supported: TCP, UDP, SCTP, ANY)")
        assertRejected(spec: ports(#"[{"port": "80", "protocol": "tcp"}]"#), field: "\(field).protocol", "\"tcp\"")
        assertRejected(spec: ports(#"[{"port": 90, "endPort": 80}]"#), field: "\(field).endPort", "below port 90")
        assertRejected(spec: ports(#"[{"endPort": 80}]"#), field: "\(field).endPort", "non-zero port")
        assertRejected(spec: ports(#"[{"port": 80, "name": "x"}]"#), field: "\(field).name", "unknown field")
        assertRejected(spec: ports("[]"), field: "spec.egress[0].toPorts[0].ports", "at least one port")
        let many = "[" + (1...41).map { #"{"port": \#($0)}"# }.joined(separator: ",") + "]"
        assertRejected(spec: ports(many), field: "spec.egress[0].toPorts[0].ports", "at most 40")
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toPorts": []}]}"#, field: "spec.egress[0].toPorts", "at least one")
    }

    func testEntitiesAndCIDRs() {
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toEntities": ["kube-apiserver"]}]}"#,
            field: "spec.egress[0].toEntities[0]",
            "entity \"kube-apiserver\" is not supported (supported: all, cluster, host, world)")
        assertRejected(
            spec: #"{\#(selector), "ingress": [{"fromEntities": ["world", "bogus"]}]}"#,
            field: "spec.ingress[0].fromEntities[1]", "entity \"bogus\" is unknown")
        for entity in ["remote-node", "ingress", "init", "health", "unmanaged", "none", "world-ipv4", "world-ipv6"] {
            assertRejected(
                spec: #"{\#(selector), "egress": [{"toEntities": ["\#(entity)"]}]}"#,
                field: "spec.egress[0].toEntities[0]", "is not supported")
        }
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toCIDR": ["10.0.0.0/33"]}]}"#,
            field: "spec.egress[0].toCIDR[0]", "bad prefix length")
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toCIDR": ["10.0.0/8"]}]}"#,
            field: "spec.egress[0].toCIDR[0]", "is not a CIDR prefix")
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}]}]}"#,
            field: "spec.egress[0].toCIDRSet[0].except[0]", "11.0.0.0/16 is not inside 10.0.0.0/8")
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toCIDRSet": [{"cidrGroupRef": "g"}]}]}"#,
            field: "spec.egress[0].toCIDRSet[0].cidrGroupRef", "not supported")
        assertRejected(
            spec: #"{\#(selector), "egress": [{"toCIDRSet": [{"except": []}]}]}"#,
            field: "spec.egress[0].toCIDRSet[0].cidr", "is required")
    }

    func testRuleLevelValidation() {
        assertRejected(
            spec: #"{"nodeSelector": {}, "ingress": []}"#, field: "spec.nodeSelector", "nodeSelector (host policy)")
        assertRejected(spec: #"{"ingress": []}"#, field: "spec.endpointSelector", "is required")
        assertRejected(
            spec: "{\(selector)}", field: "spec", "at least one of ingress, ingressDeny, egress or egressDeny")
        assertRejected(spec: #"{\#(selector), "ingress": {}}"#, field: "spec.ingress", "expected an array, got object")
        assertRejected(
            spec: #"{\#(selector), "ingress": [], "enableDefaultDeny": {"ingress": "no"}}"#,
            field: "spec.enableDefaultDeny.ingress", "expected true or false")
        assertRejected(
            spec: #"{\#(selector), "ingress": [], "labels": ["k8s:bad key=x"]}"#, field: "spec.labels[0]",
            "key must not contain whitespace")
        assertRejected(spec: #"{\#(selector), "ingress": [], "description": 5}"#, field: "spec.description", "string")
    }

    func testDocumentValidation() throws {
        let spec = #"{"endpointSelector": {}, "ingress": []}"#
        func doc(_ fields: String) -> String { "{\(fields), \"spec\": \(spec)}" }
        let cases: [(String, String?, String)] = [
            (
                doc(#""apiVersion": "cilium.io/v1", "kind": "CiliumNetworkPolicy", "metadata": {"name": "a"}"#),
                "apiVersion", "expected \"cilium.io/v2\", got \"cilium.io/v1\""
            ),
            (
                doc(#""apiVersion": "cilium.io/v2", "kind": "NetworkPolicy", "metadata": {"name": "a"}"#),
                "kind", "got \"NetworkPolicy\""
            ),
            (
                doc(#""apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {}"#),
                "metadata.name", "is required"
            ),
            (
                doc(#""apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "Bad_Name"}"#),
                "metadata.name", "lower-case"
            ),
            (
                doc(
                    #""apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "#
                        + #""metadata": {"name": "a", "namespace": "x.y"}"#),
                "metadata.namespace", "lower-case letters, digits and '-'"
            ),
            (
                doc(
                    #""apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "#
                        + #""metadata": {"name": "a", "namespace": "x"}"#),
                "metadata.namespace", "has no namespace"
            ),
            (
                #"{"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "a"}}"#,
                "spec", "spec or specs is required"
            ),
            (
                doc(
                    #""apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "a"}, "#
                        + #""extra": 1"#),
                "extra", "unknown field"
            ),
            ("[]", "policies", "at least one policy"),
            ("5", "policies", "expected a policy object or an array"),
        ]
        for (text, field, reason) in cases {
            let error = try XCTUnwrap(parseError(text), text)
            XCTAssertEqual(error.field, field, error.message)
            XCTAssertTrue(error.message.contains(reason), error.message)
        }
    }

    func testDefaultsAndAcceptedForms() throws {
        let docs = try PolicyParser.parse(
            JSON.parse(
                """
                {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                 "metadata": {"name": "multi", "labels": {"team": "x"}, "resourceVersion": "12"},
                 "specs": [
                   {"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": 53}, {"port": "8000",
                       "endPort": 8010, "protocol": "TCP"}]}]}],
                    "enableDefaultDeny": {"ingress": false}, "description": "dns",
                    "labels": ["k8s:team=x", {"key": "owner", "value": "ops", "source": "k8s"}]},
                   {"endpointSelector": {}, "egressDeny": [{"toCIDRSet": [{"cidr": "10.0.0.1/8",
                       "except": ["10.96.0.0/12"]}]}],
                    "egress": null}
                 ]}
                """))
        XCTAssertEqual(docs.count, 1)
        XCTAssertEqual(docs[0].key.description, "default/multi")
        XCTAssertEqual(docs[0].rules.map(\.path), ["specs[0]", "specs[1]"])
        let first = docs[0].rules[0]
        XCTAssertFalse(first.defaultDenyIngress)
        XCTAssertTrue(first.defaultDenyEgress)
        XCTAssertEqual(first.description, "dns")
        XCTAssertEqual(first.labels.strings, ["k8s:owner=ops", "k8s:team=x"])
        let item = try XCTUnwrap(first.ingress?[0])
        XCTAssertTrue(item.selectsAnyPeer)
        XCTAssertEqual(item.ports, [PortSpec(port: 53), PortSpec(port: 8000, endPort: 8010, proto: .tcp)])
        let second = docs[0].rules[1]
        XCTAssertNil(second.egress, "null is absent")
        XCTAssertEqual(second.egressDeny?[0].cidrSets?[0].cidr.description, "10.0.0.0/8")
        XCTAssertEqual(second.egressDeny?[0].cidrSets?[0].except.map(\.description), ["10.96.0.0/12"])
    }

    func testOneBadDocumentRejectsTheRequestWithItsIndex() throws {
        let good = policy("good", spec: #"{"endpointSelector": {}, "ingress": []}"#)
        let bad = policy("bad", spec: #"{"endpointSelector": {}, "egress": [{"toFQDNs": []}]}"#)
        var repo = PolicyRepository()
        let error = try XCTUnwrap(agentError { try repo.apply(JSON.parse("[\(good), \(bad)]")) })
        XCTAssertEqual(error.field, "[1].spec.egress[0].toFQDNs")
        XCTAssertTrue(error.message.hasPrefix("web-tier/bad: [1].spec.egress[0].toFQDNs: "), error.message)
        XCTAssertTrue(repo.documents.isEmpty)
        XCTAssertEqual(repo.revision, 1)
        let twice = try XCTUnwrap(agentError { try repo.apply(JSON.parse("[\(good), \(good)]")) })
        XCTAssertEqual(twice.field, "[1].metadata.name")
    }
}
