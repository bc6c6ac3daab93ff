import AgentAPI
import XCTest

@testable import Policy

final class PolicyRepositoryTests: XCTestCase {
    private let spec =
        #"{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}]}], "egress": [{"toEntities": ["world"]}]}"#

    func testRevisionsAndDeletes() throws {
        var repo = PolicyRepository()
        XCTAssertEqual(repo.revision, 1)
        XCTAssertEqual(
            try repo.apply(JSON.parse(policy("a", namespace: "ns1", spec: spec))).map(\.description), ["ns1/a"])
        XCTAssertEqual(repo.revision, 2)
        try repo.apply(
            JSON.parse("[\(policy("b", namespace: "ns1", spec: spec)), \(policy("a", namespace: "ns2", spec: spec))]"))
        XCTAssertEqual(repo.revision, 3)
        XCTAssertEqual(repo.documents.map(\.key.description), ["ns1/a", "ns1/b", "ns2/a"])
        // Replacing a document keeps one copy under its key.
        try repo.apply(JSON.parse(policy("a", namespace: "ns1", spec: #"{"endpointSelector": {}, "egress": []}"#)))
        XCTAssertEqual(repo.revision, 4)
        XCTAssertEqual(repo.documents.count, 3)
        XCTAssertNil(repo.document(PolicyKey(namespace: "ns1", name: "a"))?.rules[0].ingress)

        XCTAssertEqual(try repo.delete(namespace: "ns1", name: "b").map(\.description), ["ns1/b"])
        XCTAssertEqual(repo.revision, 5)
        let missing = try XCTUnwrap(agentError { try repo.delete(namespace: "ns1", name: "b") })
        XCTAssertEqual(missing.code, .notFound)
        XCTAssertEqual(repo.revision, 5)
        XCTAssertEqual(repo.delete(namespace: "nope"), [])
        XCTAssertEqual(repo.revision, 5)
        XCTAssertEqual(repo.delete(namespace: "ns1").map(\.description), ["ns1/a"])
        XCTAssertEqual(repo.revision, 6)
        XCTAssertEqual(repo.deleteAll().map(\.description), ["ns2/a"])
        XCTAssertEqual(repo.revision, 7)
        XCTAssertEqual(repo.deleteAll(), [])
        XCTAssertEqual(repo.revision, 7)
        XCTAssertTrue(repo.rules.isEmpty)
        XCTAssertTrue(repo.ruleNames.isEmpty)
    }

    func testStoredJSONIsTheDocumentAsSubmitted() throws {
        let text = policy("a", namespace: "ns1", spec: spec)
        var repo = PolicyRepository()
        try repo.apply(JSON.parse(text))
        XCTAssertEqual(repo.storedJSON, [try JSON.parse(text)])
    }

    func testRuleIDsAreStableAcrossReplacementAndNotReused() throws {
        var repo = PolicyRepository()
        try repo.apply(JSON.parse(policy("a", namespace: "ns1", spec: spec)))
        try repo.apply(
            JSON.parse(
                """
                {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "cw"},
                 "specs": [{"endpointSelector": {}, "egressDeny": [{"toEntities": ["host"]},
                     {"toEntities": ["world"]}]}]}
                """))
        let before = repo.ruleNames
        XCTAssertEqual(
            before.sorted { $0.key < $1.key }.map(\.value),
            ["ns1/a ingress[0]", "ns1/a egress[0]", "cw specs[0].egressDeny[0]", "cw specs[0].egressDeny[1]"])
        XCTAssertTrue(before.keys.allSatisfy { $0 >= 1 })

        // Replace ns1/a with only an ingress: its ingress id stays, the egress id goes.
        try repo.apply(
            JSON.parse(policy("a", namespace: "ns1", spec: #"{"endpointSelector": {}, "ingress": [{}, {}]}"#)))
        let ingressID = before.first { $0.value == "ns1/a ingress[0]" }!.key
        let egressID = before.first { $0.value == "ns1/a egress[0]" }!.key
        XCTAssertEqual(repo.ruleName(ingressID), "ns1/a ingress[0]")
        XCTAssertNil(repo.ruleName(egressID))
        let newID = repo.ruleNames.first { $0.value == "ns1/a ingress[1]" }!.key
        XCTAssertGreaterThan(newID, before.keys.max()!)
    }

    func testRestore() throws {
        var repo = PolicyRepository()
        try repo.apply(JSON.parse(policy("a", namespace: "ns1", spec: spec)))
        try repo.apply(JSON.parse(policy("b", namespace: "ns1", spec: spec)))
        try repo.delete(namespace: "ns1", name: "a")
        let saved = (repo.storedJSON, repo.ruleNames, repo.revision)

        var restored = PolicyRepository()
        restored.restore(
            documents: try saved.0.map { try PolicyParser.parseDocument($0) }, ruleNames: saved.1, revision: saved.2)
        XCTAssertEqual(restored.revision, saved.2)
        XCTAssertEqual(restored.ruleNames, saved.1)
        XCTAssertEqual(restored.documents, repo.documents)
        // New rules continue above the restored ids.
        try restored.apply(JSON.parse(policy("c", namespace: "ns1", spec: spec)))
        XCTAssertEqual(restored.revision, saved.2 + 1)
        let newIDs = Set(restored.ruleNames.keys).subtracting(saved.1.keys)
        XCTAssertEqual(newIDs.count, 2)
        XCTAssertTrue(newIDs.allSatisfy { $0 > saved.1.keys.max()! })
    }

    func testStoredArraySplicesTheDocumentsAfterAnOptionalFirstElement() throws {
        var repo = PolicyRepository()
        XCTAssertEqual(try JSON.parse(repo.storedJSONArray()), [])
        XCTAssertEqual(try JSON.parse(repo.storedJSONArray(after: Array(#"{"h":1}"#.utf8))), [["h": 1]])
        try repo.apply(JSON.parse(policy("a", namespace: "ns1", spec: spec)))
        try repo.apply(JSON.parse(policy("b", namespace: "ns1", spec: spec)))
        XCTAssertEqual(try JSON.parse(repo.storedJSONArray()), .array(repo.storedJSON))
        XCTAssertEqual(
            try JSON.parse(repo.storedJSONArray(after: Array(#"{"h":1}"#.utf8))), .array([["h": 1]] + repo.storedJSON))
    }

    func testEntryJSON() throws {
        var repo = PolicyRepository()
        try repo.apply(JSON.parse(SeedFixtures.allowTraffic))
        let id = try XCTUnwrap(repo.ruleNames.first { $0.value == "web-tier/allow-frontend-to-backend egress[0]" }?.key)
        let entry = PolicyEntry(
            identity: 300, direction: .egress, proto: 6, port: 8080, portPrefixBits: 16, ruleIDs: [id])
        XCTAssertEqual(
            repo.json(entry),
            [
                "direction": "egress", "identity": 300, "protocol": "TCP", "port": 8080, "end-port": 8080,
                "deny": false, "rules": ["web-tier/allow-frontend-to-backend egress[0]"],
            ])
    }

    func testRulesChangedAreThoseOfDocumentsThatDifferFromBothSides() throws {
        func selects(_ app: String) -> String {
            #"{"endpointSelector": {"matchLabels": {"app": "\#(app)"}}, "ingress": [{"fromEndpoints": [{}]}]}"#
        }
        var before = PolicyRepository()
        try before.apply(JSON.parse("[\(policy("a", spec: selects("a"))), \(policy("b", spec: selects("b")))]"))
        func apps(_ rules: [PolicyRule]) -> [String] {
            rules.map { rule in
                let labels = ["a", "b", "c", "d"].map { app in
                    LabelSet([
                        try! Label(source: "k8s", key: "app", value: app),
                        try! Label(source: "k8s", key: "io.kubernetes.pod.namespace", value: "web-tier"),
                    ])
                }
                return ["a", "b", "c", "d"].enumerated().filter { rule.endpointSelector.matches(labels[$0.offset]) }
                    .map(\.element).joined()
            }.sorted()
        }

        var after = before
        XCTAssertEqual(apps(after.rulesChanged(from: before)), [], "nothing changed")
        try after.apply(JSON.parse(policy("b", spec: selects("b"))))
        XCTAssertEqual(apps(after.rulesChanged(from: before)), [], "the same document applied again changes nothing")

        try after.apply(JSON.parse(policy("b", spec: selects("c"))))
        XCTAssertEqual(apps(after.rulesChanged(from: before)), ["b", "c"], "a replaced document: old and new rules")

        try after.apply(JSON.parse(policy("d", spec: selects("d"))))
        XCTAssertEqual(apps(after.rulesChanged(from: before)), ["b", "c", "d"], "an added document")

        _ = try after.delete(namespace: "web-tier", name: "a")
        XCTAssertEqual(apps(after.rulesChanged(from: before)), ["a", "b", "c", "d"], "a deleted document")
        XCTAssertEqual(apps(before.rulesChanged(from: after)), ["a", "b", "c", "d"], "symmetric")
    }

    func testRulesSelectingPeersAreThoseWithAnItemThatSelectsThem() throws {
        func rule(_ name: String, _ section: String) -> String {
            policy(name, spec: #"{"endpointSelector": {"matchLabels": {"app": "\#(name)"}}, \#(section)}"#)
        }
        var repo = PolicyRepository()
        try repo.apply(
            JSON.parse(
                """
                [\(rule("from-x", #""ingress": [{"fromEndpoints": [{"matchLabels": {"app": "x"}}]}]"#)),
                 \(rule("deny-to-x", #""egressDeny": [{"toEndpoints": [{"matchLabels": {"app": "x"}}]}]"#)),
                 \(rule("from-y", #""ingress": [{"fromEndpoints": [{"matchLabels": {"app": "y"}}]}]"#)),
                 \(rule("cluster", #""egress": [{"toEntities": ["cluster"]}]"#)),
                 \(rule("world", #""egress": [{"toEntities": ["world"]}]"#)),
                 \(rule("any", #""ingress": [{}]"#))]
                """))
        let x = Identity(id: 300, labels: labels("k8s:app=x", "k8s:io.kubernetes.pod.namespace=web-tier"))
        let selecting = repo.rulesSelectingPeers([x])
        // "from-y" and "world" do not select x; "any" selects every peer whatever identities exist.
        XCTAssertEqual(selecting.count, 3, "\(selecting.map(\.endpointSelector))")
        for app in ["from-x", "deny-to-x", "cluster"] {
            let subject = labels("k8s:app=\(app)", "k8s:io.kubernetes.pod.namespace=web-tier")
            XCTAssertTrue(selecting.contains { $0.endpointSelector.matches(subject) }, app)
        }
        XCTAssertEqual(repo.rulesSelectingPeers([]), [])
    }

    /// An HTTP rule's own `fromEndpoints` under an item open to any peer: the item's wildcard entry does not change
    /// when a peer appears, the rule's identity set does, so the rule is one a new peer of that selector affects.
    func testRulesSelectingPeersIncludeThoseWhoseHTTPRulesSelectThem() throws {
        func rule(_ name: String, http: String) -> String {
            policy(
                name,
                spec: #"""
                    {"endpointSelector": {"matchLabels": {"app": "\#(name)"}}, "ingress": [{"toPorts": [{
                     "ports": [{"port": "8080", "protocol": "TCP"}], "rules": {"http": [\#(http)]}}]}]}
                    """#)
        }
        var repo = PolicyRepository()
        try repo.apply(
            JSON.parse(
                """
                [\(rule("for-x", http: #"{"method": "POST", "fromEndpoints": [{"matchLabels": {"app": "x"}}]}"#)),
                 \(rule("for-y", http: #"{"method": "POST", "fromEndpoints": [{"matchLabels": {"app": "y"}}]}"#)),
                 \(rule("for-anyone", http: #"{"method": "GET"}"#))]
                """))
        let x = Identity(id: 300, labels: labels("k8s:app=x", "k8s:io.kubernetes.pod.namespace=web-tier"))
        let selecting = repo.rulesSelectingPeers([x])
        XCTAssertEqual(selecting.count, 1, "\(selecting.map(\.endpointSelector))")
        XCTAssertTrue(
            selecting.first?.endpointSelector.matches(
                labels("k8s:app=for-x", "k8s:io.kubernetes.pod.namespace=web-tier")) ?? false)
        let elsewhere = Identity(id: 301, labels: labels("k8s:app=x", "k8s:io.kubernetes.pod.namespace=data-tier"))
        XCTAssertEqual(repo.rulesSelectingPeers([elsewhere]), [], "the rule's selector is the policy's namespace's")
    }
}
