import AgentAPI
import XCTest

@testable import Policy

/// The index of rules by the peers they name gives the rules a new identity affects exactly as testing every rule
/// does, over every kind of peer, and looks at fewer rules when the peers are named by label.
final class PeerRuleIndexTests: XCTestCase {
    /// Cilium policies in two namespaces and a NetworkPolicy, naming peers every way the parser accepts.
    private let documents: [String] = {
        func cnp(_ name: String, _ ns: String, _ sections: String) -> String {
            policy(
                name, namespace: ns, spec: #"{"endpointSelector": {"matchLabels": {"app": "\#(name)"}}, \#(sections)}"#)
        }
        func expression(_ key: String, _ op: String, _ values: String) -> String {
            #"{"matchExpressions": [{"key": "\#(key)", "operator": "\#(op)", "values": \#(values)}]}"#
        }
        let web = #"{"matchLabels": {"tier": "web"}}"#
        var documents: [String] = []
        for ns in ["ns-a", "ns-b"] {
            documents += [
                cnp("from-api", ns, #""ingress": [{"fromEndpoints": [{"matchLabels": {"app": "api"}}]}]"#),
                cnp(
                    "from-web", ns,
                    #""ingress": [{"fromEndpoints": [\#(web)], "toPorts": [{"ports": [{"port": "80"}]}]}]"#),
                cnp("deny-to-db", ns, #""egressDeny": [{"toEndpoints": [{"matchLabels": {"app": "db"}}]}]"#),
                cnp("two-apps", ns, #""egress": [{"toEndpoints": [\#(expression("app", "In", #"["api", "db"]"#))]}]"#),
                cnp("not-web", ns, #""ingress": [{"fromEndpoints": [\#(expression("tier", "NotIn", #"["web"]"#))]}]"#),
                cnp("has-tier", ns, #""ingress": [{"fromEndpoints": [\#(expression("tier", "Exists", "[]"))]}]"#),
                cnp("everyone", ns, #""ingress": [{"fromEndpoints": [{}]}]"#),
                cnp("ports-only", ns, #""ingress": [{"toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}]}]}]"#),
                cnp("cluster", ns, #""egress": [{"toEntities": ["cluster"]}]"#),
                cnp("world", ns, #""egress": [{"toEntities": ["world"]}]"#),
                cnp("host", ns, #""ingress": [{"fromEntities": ["host"]}]"#),
                cnp("all", ns, #""egressDeny": [{"toEntities": ["all"]}]"#),
                cnp("cidr", ns, #""egress": [{"toCIDR": ["10.1.0.0/16"]}]"#),
                cnp(
                    "cidr-set", ns,
                    #""egress": [{"toCIDRSet": [{"cidr": "0.0.0.0/0", "except": ["10.1.2.0/24"]}]}]"#),
                cnp("service", ns, #""egress": [{"toServices": [{"k8sService": {"serviceName": "db"}}]}]"#),
                cnp(
                    "http-from-api", ns,
                    #"""
                    "ingress": [{"toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}], "rules": {"http": [
                     {"method": "POST", "fromEndpoints": [{"matchLabels": {"app": "api"}}]}, {"method": "GET"}]}}]}]
                    """#),
                cnp("endpoints-and-host", ns, #""ingress": [{"fromEndpoints": [\#(web)], "fromEntities": ["host"]}]"#),
            ]
        }
        documents.append(
            """
            {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "np", "namespace": "ns-a"}, "spec": {"podSelector": {"matchLabels": {"app": "db"}},
             "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}},
              {"namespaceSelector": {"matchLabels": {"team": "blue"}}},
              {"ipBlock": {"cidr": "10.250.0.0/16"}}]}]}}
            """)
        documents.append(
            """
            {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "ccnp"},
             "spec": {"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchLabels": {"k8s:app": "api"}}]}]}}
            """)
        return documents
    }()

    private func pod(_ id: UInt32, _ ns: String, _ extra: String...) -> Identity {
        Identity(
            id: id,
            labels: try! LabelSet(
                parsing: ["k8s:io.kubernetes.pod.namespace=\(ns)", "k8s:io.cilium.k8s.namespace.labels.team=blue"]
                    + extra))
    }

    /// Pods of both namespaces and one without a policy, the reserved identities, CIDR identities inside and
    /// outside the policies' prefixes, and identity 0.
    private var identities: [Identity] {
        var identities: [Identity] = []
        var id: UInt32 = 300
        for ns in ["ns-a", "ns-b", "ns-c"] {
            for extra in [["k8s:app=api"], ["k8s:app=db", "k8s:tier=data"], ["k8s:app=front", "k8s:tier=web"], []] {
                identities.append(
                    Identity(
                        id: id, labels: try! LabelSet(parsing: ["k8s:io.kubernetes.pod.namespace=\(ns)"] + extra)))
                id += 1
            }
        }
        identities.append(pod(id, "ns-a", "k8s:app=other"))
        identities += IdentityAllocator().identities
        identities += [
            Identity(id: 1 << 24, labels: labels("cidr:10.1.0.0/16")),
            Identity(id: (1 << 24) + 1, labels: labels("cidr:10.1.2.0/24")),
            Identity(id: (1 << 24) + 2, labels: labels("cidr:192.168.0.0/16")),
            Identity(id: 0, labels: labels("reserved:unknown")),
        ]
        return identities
    }

    func testIndexedAnswerIsTheScansForEveryIdentityAndPairs() throws {
        var repo = PolicyRepository()
        try repo.apply(JSON.parse("[" + documents.joined(separator: ",") + "]"))
        XCTAssertEqual(repo.rules.count, documents.count)
        let identities = identities
        var nonEmpty = 0
        for identity in identities {
            let scanned = repo.rulesSelectingPeersByScan([identity])
            XCTAssertEqual(repo.rulesSelectingPeers([identity]), scanned, "identity \(identity.id) \(identity.labels)")
            if !scanned.isEmpty { nonEmpty += 1 }
        }
        // The comparison means something only if most identities are named by some rule.
        XCTAssertGreaterThan(nonEmpty, identities.count / 2)
        for (first, second) in zip(identities, identities.dropFirst(5)) {
            XCTAssertEqual(repo.rulesSelectingPeers([first, second]), repo.rulesSelectingPeersByScan([first, second]))
        }
        XCTAssertEqual(repo.rulesSelectingPeers(identities), repo.rulesSelectingPeersByScan(identities))
        XCTAssertEqual(repo.rulesSelectingPeers([]), [])
    }

    /// A pod named by label only is tested against the rules that could name it: those filed under its labels,
    /// and the rules with selectors, entities or CIDRs that are checked for every identity.
    func testLabelledPeerIsTestedAgainstFewerRules() throws {
        var repo = PolicyRepository()
        try repo.apply(JSON.parse("[" + documents.joined(separator: ",") + "]"))
        let api = Identity(id: 300, labels: labels("k8s:app=api", "k8s:io.kubernetes.pod.namespace=ns-a"))
        let candidates = repo.peerRules.candidates(for: [api], in: PeerUniverse([api]))
        let selecting = repo.rulesSelectingPeers([api])
        XCTAssertLessThan(candidates.count, repo.rules.count / 2, "\(candidates.count) of \(repo.rules.count)")
        XCTAssertGreaterThanOrEqual(candidates.count, selecting.count)
        // No rule of the other namespace that names `app=api` alone is a candidate.
        for position in candidates {
            let rule = repo.rules[position]
            XCTAssertFalse(
                rule.document.namespace == "ns-b" && ["from-api", "http-from-api"].contains(rule.document.name),
                "\(rule.document)")
        }
    }
}
