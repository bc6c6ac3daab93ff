import AgentAPI
import XCTest

@testable import Policy

/// Kubernetes NetworkPolicy documents: accepted forms compile with the Kubernetes documentation's semantics, and
/// refused forms name the field.
final class NetworkPolicyParserTests: XCTestCase {
    /// Pods a and b of namespaces x and y, namespaces labelled `ns=<name>`; the node and the world.
    private func pod(_ id: UInt32, _ name: String, _ ns: String) -> Identity {
        Identity(
            id: id,
            labels: labels(
                "k8s:pod=\(name)", "k8s:io.kubernetes.pod.namespace=\(ns)",
                "k8s:io.cilium.k8s.namespace.labels.ns=\(ns)"))
    }
    private lazy var xa = pod(300, "a", "x")
    private lazy var xb = pod(301, "b", "x")
    private lazy var ya = pod(302, "a", "y")
    private lazy var yb = pod(303, "b", "y")
    private let world = Identity(id: 1 << 24, labels: labels("cidr:10.9.0.0/16"))
    private var identities: [Identity] { IdentityAllocator().identities + [xa, xb, ya, yb, world] }

    private func networkPolicy(_ name: String = "np", namespace: String = "x", spec: String) -> String {
        """
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": "\(name)", "namespace": "\(namespace)"}, "spec": \(spec)}
        """
    }

    /// The policy of `endpoint` under the given NetworkPolicy spec (namespace x).
    private func resolved(_ spec: String, for endpoint: Identity? = nil) throws -> EndpointPolicy {
        let repo = try repository(networkPolicy(spec: spec))
        return repo.resolve(endpoint: (endpoint ?? xa).labels, identities: identities, mode: .default)
    }

    /// Ingress allow entries as "identity proto port/bits".
    private func allowed(_ policy: EndpointPolicy, _ direction: Direction = .ingress) -> [String] {
        policy.entries.filter { $0.direction == direction && !$0.deny }.map {
            "\($0.identity) \($0.proto) \($0.port)/\($0.portPrefixBits)"
        }
    }

    func testDefaultDenyIngressIsolatesOnlyIngressOfItsNamespace() throws {
        let policy = try resolved(#"{"podSelector": {}}"#)
        XCTAssertTrue(policy.ingressEnforced)
        XCTAssertFalse(policy.egressEnforced, "a direction not in policyTypes is not isolated")
        XCTAssertEqual(policy.entries, [])
        let other = try resolved(#"{"podSelector": {}}"#, for: ya)
        XCTAssertFalse(other.ingressEnforced, "pods of another namespace are not selected")
    }

    func testPolicyTypes() throws {
        let both = try resolved(#"{"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}"#)
        XCTAssertTrue(both.ingressEnforced && both.egressEnforced)
        XCTAssertEqual(both.entries, [])
        let egressOnly = try resolved(#"{"podSelector": {}, "policyTypes": ["Egress"]}"#)
        XCTAssertFalse(egressOnly.ingressEnforced)
        XCTAssertTrue(egressOnly.egressEnforced)
        // Egress rules without policyTypes make egress isolated; an empty egress list does not.
        let implied = try resolved(#"{"podSelector": {}, "egress": [{}]}"#)
        XCTAssertTrue(implied.ingressEnforced && implied.egressEnforced)
        XCTAssertEqual(allowed(implied, .egress), ["0 0 0/0"])
        let empty = try resolved(#"{"podSelector": {}, "egress": []}"#)
        XCTAssertFalse(empty.egressEnforced)
        // Rules of a direction policyTypes leaves out are ignored, with a warning.
        let text = networkPolicy(spec: #"{"podSelector": {}, "policyTypes": ["Ingress"], "egress": [{}]}"#)
        let document = try XCTUnwrap(PolicyParser.parse(JSON.parse(text)).first)
        XCTAssertNil(document.rules[0].egress)
        XCTAssertEqual(document.warnings.count, 1)
        XCTAssertTrue(document.warnings[0].hasPrefix("NetworkPolicy x/np: spec.egress: ignored"), document.warnings[0])
    }

    func testAnEmptyRuleAllowsEveryPeerAndPort() throws {
        XCTAssertEqual(allowed(try resolved(#"{"podSelector": {}, "ingress": [{}]}"#)), ["0 0 0/0"])
        XCTAssertEqual(allowed(try resolved(#"{"podSelector": {}, "ingress": [{"from": []}]}"#)), ["0 0 0/0"])
        let ports = try resolved(#"{"podSelector": {}, "ingress": [{"ports": [{"port": 81}]}]}"#)
        XCTAssertEqual(allowed(ports), ["0 6 81/16"], "any peer, TCP (the default protocol) port 81")
    }

    func testPodSelectorPeersAreOfThePolicysNamespace() throws {
        let policy = try resolved(
            #"{"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"podSelector": {}}]}]}"#)
        XCTAssertEqual(allowed(policy), ["300 0 0/0", "301 0 0/0"])
        let b = try resolved(
            #"{"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"podSelector": {}}]}]}"#, for: xb)
        XCTAssertFalse(b.ingressEnforced, "pod b is not selected")
    }

    func testNamespaceSelectorEveryNamespaceIsEveryPodNeverTheWorldOrTheNode() throws {
        let policy = try resolved(#"{"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}"#)
        XCTAssertEqual(allowed(policy), ["300 0 0/0", "301 0 0/0", "302 0 0/0", "303 0 0/0"])
    }

    func testNamespaceSelectorAndPodSelectorInOnePeerAreANDedSeparatePeersORed() throws {
        let and = try resolved(
            #"""
            {"podSelector": {}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "b"}}}]}]}
            """#)
        XCTAssertEqual(allowed(and), ["303 0 0/0"])
        let or = try resolved(
            #"""
            {"podSelector": {}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"ns": "y"}}}, {"podSelector": {"matchLabels": {"pod": "b"}}}]}]}
            """#)
        XCTAssertEqual(allowed(or), ["301 0 0/0", "302 0 0/0", "303 0 0/0"])
    }

    func testMetadataNameIsThePodsNamespaceAndExpressionsWork() throws {
        let byName = try resolved(
            #"""
            {"podSelector": {}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]}
            """#)
        XCTAssertEqual(allowed(byName), ["302 0 0/0", "303 0 0/0"])
        let expression = try resolved(
            #"""
            {"podSelector": {}, "ingress": [{"from": [
                {"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x"]}]},
                 "podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["a", "c"]}]}}]}]}
            """#)
        XCTAssertEqual(allowed(expression), ["302 0 0/0"])
    }

    func testPortsProtocolsAndRanges() throws {
        let policy = try resolved(
            #"""
            {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}],
              "ports": [{"port": 80, "endPort": 81}, {"protocol": "UDP", "port": 53}, {"protocol": "SCTP"}]}]}
            """#)
        XCTAssertEqual(allowed(policy), ["301 6 80/15", "301 17 53/16", "301 132 0/0"])
    }

    func testNamedPortsResolveAgainstTheDestination() throws {
        // Ingress: x/a's own names. UDP "dns" is not TCP (the default protocol), "none" is nobody's.
        let own = [
            NamedPort(name: "http", port: 8080), NamedPort(name: "dns", port: 53, proto: .udp),
        ]
        let repo = try repository(
            networkPolicy(
                spec: #"""
                    {"podSelector": {}, "ingress": [{"ports": [{"port": "http"}, {"port": "dns"}, {"port": "none"}]}]}
                    """#))
        let ingress = repo.resolve(
            endpoint: xa.labels, peers: PolicyPeers(identities), mode: .default, namedPorts: own)
        XCTAssertEqual(allowed(ingress), ["0 6 8080/16"])
        let unnamed = repo.resolve(endpoint: xa.labels, peers: PolicyPeers(identities), mode: .default)
        XCTAssertTrue(unnamed.ingressEnforced)
        XCTAssertEqual(unnamed.entries, [], "a name no pod defines allows nothing")

        // Egress: each peer's names.
        let egress = try repository(
            networkPolicy(
                spec: #"""
                    {"podSelector": {}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"port": "http"}]}]}
                    """#))
        let peers = PolicyPeers(
            identities,
            namedPorts: [301: [NamedPort(name: "http", port: 80)], 302: [NamedPort(name: "http", port: 81)]])
        let resolved = egress.resolve(endpoint: xa.labels, peers: peers, mode: .default)
        XCTAssertEqual(allowed(resolved, .egress), ["301 6 80/16", "302 6 81/16"])
    }

    func testIPBlockIsACIDRSet() throws {
        let text = networkPolicy(
            spec: #"""
                {"podSelector": {}, "egress": [{"to": [
                    {"ipBlock": {"cidr": "10.9.0.0/16", "except": ["10.9.1.0/24"]}}]}]}
                """#)
        let rule = try XCTUnwrap(PolicyParser.parse(JSON.parse(text)).first?.rules.first)
        XCTAssertEqual(
            rule.egress?.first?.cidrSets,
            [CIDRPeer(cidr: IPPrefix("10.9.0.0/16")!, except: [IPPrefix("10.9.1.0/24")!], selectsPods: true)])
        // Pods are selected by the addresses of their identity: all of them inside and none excepted.
        let repo = try repository(text)
        let peers = PolicyPeers(
            identities,
            addresses: [
                301: [IPAddress("10.9.0.5")!], 302: [IPAddress("10.9.1.5")!],
                303: [IPAddress("10.9.0.6")!, IPAddress("10.8.0.6")!],
            ])
        let selected = repo.resolve(endpoint: xa.labels, peers: peers, mode: .default)
        XCTAssertEqual(allowed(selected, .egress), ["301 0 0/0", "16777216 0 0/0"])
        // A CiliumNetworkPolicy's CIDR set never selects pods.
        let cnp = try repository(
            policy(
                namespace: "x",
                spec: #"{"endpointSelector": {}, "egress": [{"toCIDRSet": [{"cidr": "10.9.0.0/16"}]}]}"#))
        XCTAssertEqual(
            allowed(cnp.resolve(endpoint: xa.labels, peers: peers, mode: .default), .egress), ["16777216 0 0/0"])
    }

    func testListsAndMixedDocumentsAndKeys() throws {
        let cnp = policy("np", namespace: "x", spec: #"{"endpointSelector": {}, "ingress": []}"#)
        let list = """
            {"apiVersion": "v1", "kind": "List", "items": [\(networkPolicy(spec: #"{"podSelector": {}}"#)),
              \(networkPolicy("other", spec: #"{"podSelector": {}}"#))]}
            """
        var repo = try repository("[\(cnp), \(list)]")
        XCTAssertEqual(
            repo.documents.map(\.key.description), ["x/np", "NetworkPolicy x/np", "NetworkPolicy x/other"])
        XCTAssertEqual(repo.documents.map(\.kind), [.namespaced, .networkPolicy, .networkPolicy])
        XCTAssertTrue(repo.rules.contains { $0.document.description == "NetworkPolicy x/np" })
        let ambiguous = agentError { try repo.delete(namespace: "x", name: "np") }
        XCTAssertEqual(ambiguous?.field, "kind")
        XCTAssertEqual(
            try repo.delete(namespace: "x", name: "np", kind: .networkPolicy).map(\.description),
            [
                "NetworkPolicy x/np"
            ])
        XCTAssertEqual(try repo.delete(namespace: "x", name: "np").map(\.description), ["x/np"])
        XCTAssertEqual(try repo.delete(namespace: "x", name: "other").map(\.description), ["NetworkPolicy x/other"])
        // A document's namespace defaults to "default"; the same key twice is refused.
        let unnamed =
            #"{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n"}, "spec": {}}"#
        XCTAssertEqual(try PolicyParser.parse(JSON.parse(unnamed)).first?.key.namespace, "default")
        let twice = parseError("[\(networkPolicy(spec: "{}")), \(networkPolicy(spec: "{}"))]")
        XCTAssertEqual(twice?.field, "[1].metadata.name")
    }

    func testRefusedFormsNameTheField() {
        let cases: [(spec: String, field: String, says: String)] = [
            (#"{"podSelector": {}, "ingres": []}"#, "spec.ingres", "unknown field"),
            (#"{"ingress": [{"to": []}]}"#, "spec.ingress[0].to", "from"),
            (#"{"ingress": [{"from": [{"podSelectr": {}}]}]}"#, "spec.ingress[0].from[0].podSelectr", "unknown"),
            (#"{"ingress": [{"from": [{}]}]}"#, "spec.ingress[0].from[0]", "needs podSelector"),
            (
                #"{"ingress": [{"from": [{"podSelector": {}, "ipBlock": {"cidr": "10.0.0.0/8"}}]}]}"#,
                "spec.ingress[0].from[0].ipBlock", "cannot be combined"
            ),
            (#"{"ingress": [{"ports": [{"port": "http-"}]}]}"#, "spec.ingress[0].ports[0].port", "port name"),
            (
                #"{"ingress": [{"ports": [{"port": "http", "endPort": 90}]}]}"#, "spec.ingress[0].ports[0].endPort",
                "named port"
            ),
            (#"{"ingress": [{"ports": [{"protocol": "ANY"}]}]}"#, "spec.ingress[0].ports[0].protocol", "ANY"),
            (#"{"ingress": [{"ports": [{"endPort": 90}]}]}"#, "spec.ingress[0].ports[0].endPort", "needs port"),
            (#"{"ingress": [{"ports": [{"port": 90, "endPort": 80}]}]}"#, "spec.ingress[0].ports[0].endPort", "below"),
            (#"{"policyTypes": ["ingress"]}"#, "spec.policyTypes[0]", "unknown"),
            (#"{"policyTypes": []}"#, "spec.policyTypes", "expected"),
            (
                #"{"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}]}"#,
                "spec.egress[0].to[0].ipBlock.except[0]", "not inside"
            ),
        ]
        for (spec, field, says) in cases {
            let error = parseError(networkPolicy(spec: spec))
            XCTAssertEqual(error?.status, 400, spec)
            XCTAssertEqual(error?.field, field, spec)
            XCTAssertTrue(error?.message.contains(says) == true, "\(spec): \(error?.message ?? "")")
            XCTAssertTrue(error?.message.hasPrefix("NetworkPolicy x/np: ") == true, error?.message ?? "")
        }
        let version = parseError(
            #"{"apiVersion": "cilium.io/v2", "kind": "NetworkPolicy", "metadata": {"name": "n"}, "spec": {}}"#)
        XCTAssertEqual(version?.field, "kind", "a NetworkPolicy is networking.k8s.io/v1")
        let kind = parseError(
            #"{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "n"}, "spec": {}}"#)
        XCTAssertEqual(kind?.field, "kind")
        let missing = parseError(
            #"{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n"}}"#)
        XCTAssertEqual(missing?.field, "spec")
        let listItem = parseError(
            #"""
            {"kind": "List", "items": [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                        "metadata": {"name": "n"}, "spec": {"x": 1}}]}
            """#)
        XCTAssertEqual(listItem?.field, "items[0].spec.x")
        XCTAssertEqual(parseError(#"{"kind": "List", "items": []}"#)?.field, "items")
        XCTAssertEqual(parseError(#"[{"kind": "List", "metadata": [], "items": []}]"#)?.field, "[0].metadata")
    }
}
