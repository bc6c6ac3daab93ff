import AgentAPI
import Foundation
import XCTest

/// The policy in cluster mode lives in etcd: an import or a delete on any node applies on every node as one
/// revision of the cluster, and a node keeps enforcing what it last applied while etcd is away, across a restart.
final class ClusterPolicyTests: EndToEndTestCase {
    /// `nodectl policy import` of the seed policies, once, on `agent`; its answer's revision.
    private func importSeedPolicies(on agent: AgentProcess) throws -> Int64 {
        let result = try agent.nodectl(
            "policy", "import", "-o", "json", try fixture("default-deny-all.yaml"),
            try fixture("allow-traffic-policy.yaml"))
        XCTAssertEqual(result.status, 0, "nodectl policy import: \(result.stderr)")
        guard let revision = (try? JSON.parse(result.stdout))?["revision"]?.intValue else {
            throw AgentHarnessError("nodectl policy import answered \(result.stdout) \(result.stderr)")
        }
        return revision
    }

    /// `GET /v1/policy` of `agent`.
    private func policy(of agent: AgentProcess) throws -> JSON {
        let answer = try agent.api(.GET, "/v1/policy")
        guard answer.status == 200, let json = answer.json else { throw AgentHarnessError("GET /v1/policy: \(answer)") }
        return json
    }

    /// Waits until every agent shows policy revision `revision` and its endpoints run it.
    private func waitForRevision(_ revision: Int64, on agents: [AgentProcess], timeout: TimeInterval = 10) throws {
        for (index, agent) in agents.enumerated() {
            let deadline = Date() + timeout
            var last: JSON = .null
            repeat {
                last = try policy(of: agent)
                if last["revision"]?.intValue == revision { break }
                Thread.sleep(forTimeInterval: 0.05)
            } while Date() < deadline
            guard last["revision"]?.intValue == revision else {
                throw AgentHarnessError(
                    "node \(index + 1) is at policy revision \(last["revision"] ?? .null), "
                        + "not \(revision)")
            }
            try agent.waitForPolicyRevision()
        }
    }

    /// The policy names each agent lists, by node.
    private func policyNames(_ agents: [AgentProcess]) throws -> [[String]] {
        try agents.map { agent in
            (try policy(of: agent)["policies"]?.arrayValue ?? []).map { document in
                let metadata = document["metadata"]
                return "\(metadata?["namespace"]?.stringValue ?? "")/\(metadata?["name"]?.stringValue ?? "")"
            }
        }
    }

    func testAnImportOnOneNodeAppliesOnEveryNodeAsOneRevision() throws {
        let s = try makeClusterSeedScenario()
        let before = try s.agents.map { try policy(of: $0)["revision"]?.intValue }
        XCTAssertEqual(Set(before).count, 1, "one revision before any import: \(before)")

        let revision = try importSeedPolicies(on: s.agents[0])
        XCTAssertEqual(revision, (before[0] ?? 0) + 1, "one import is one revision of the cluster")
        try waitForRevision(revision, on: s.agents)
        let documents = try s.agents.map { try policy(of: $0)["policies"] }
        XCTAssertEqual(documents[0]?.arrayValue?.count, 7, "the seed's seven documents")
        XCTAssertEqual(documents[1], documents[0], "node 2 lists the documents of node 1")
        XCTAssertEqual(documents[2], documents[0], "node 3 lists the documents of node 1")
        assertReachability(s.pods.enforcedMatrix, "seed policies imported once, on node 1")

        let deleted = try s.agents[2].nodectl(
            "policy", "delete", "--namespace", "web-tier", "--name", "allow-frontend-to-backend")
        XCTAssertEqual(deleted.status, 0, "nodectl policy delete on node 3: \(deleted.stderr)")
        try waitForRevision(revision + 1, on: s.agents)
        for (index, names) in try policyNames(s.agents).enumerated() {
            XCTAssertFalse(names.contains("web-tier/allow-frontend-to-backend"), "node \(index + 1): \(names)")
            XCTAssertEqual(names.count, 6, "node \(index + 1): \(names)")
        }
        assertReachability(
            [
                Probe(from: s.frontend, to: s.backend, port: 8080, .dropped),
                Probe(from: s.backend, to: s.postgres, port: 5432, .passes),
                Probe(from: s.backend, to: s.frontend, port: 80, .dropped),
            ], "frontend's egress allow deleted on node 3")

        // A delete of what the cluster does not have: 404, nothing written.
        let missing = try s.agents[1].api(.DELETE, "/v1/policy?namespace=web-tier&name=allow-frontend-to-backend")
        XCTAssertEqual(missing.status, 404, "\(missing)")
        XCTAssertEqual(
            try s.agents.map { try policy(of: $0)["revision"]?.intValue }, Array(repeating: revision + 1, count: 3))
    }

    func testANetworkPolicyNamedAsACiliumPolicyIsADocumentOfItsOwnOnEveryNode() throws {
        let s = try makeClusterSeedScenario()
        let revision = try importSeedPolicies(on: s.agents[0])
        try waitForRevision(revision, on: s.agents)
        let networkPolicy = """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: allow-frontend-to-backend, namespace: web-tier}
            spec: {podSelector: {}, policyTypes: [Egress]}
            """
        let imported = try s.agents[1].nodectl(["policy", "import", "-"], input: networkPolicy)
        XCTAssertEqual(imported.status, 0, "\(imported)")
        try waitForRevision(revision + 1, on: s.agents)
        for agent in s.agents {
            let kinds = try policy(of: agent)["policies"]?.arrayValue?.filter {
                $0["metadata"]?["name"] == "allow-frontend-to-backend"
            }.compactMap { $0["kind"]?.stringValue }
            XCTAssertEqual(kinds, ["CiliumNetworkPolicy", "NetworkPolicy"])
        }
        assertReachability(s.pods.enforcedMatrix, "a NetworkPolicy only adds allows: the seed's matrix holds")

        let deleted = try s.agents[2].nodectl(
            "policy", "delete", "--namespace", "web-tier", "--name", "allow-frontend-to-backend", "--kind",
            "NetworkPolicy")
        XCTAssertEqual(deleted.status, 0, "\(deleted)")
        try waitForRevision(revision + 2, on: s.agents)
        for (index, names) in try policyNames(s.agents).enumerated() {
            XCTAssertEqual(names.count, 7, "node \(index + 1) keeps the seed's documents: \(names)")
            XCTAssertTrue(names.contains("web-tier/allow-frontend-to-backend"), "node \(index + 1): \(names)")
        }
    }

    func testWithoutEtcdAChangeIsRefusedAndThePolicyKeepsEnforcingAcrossARestart() throws {
        let s = try makeClusterSeedScenario()
        let revision = try importSeedPolicies(on: s.agents[0])
        try waitForRevision(revision, on: s.agents)
        assertReachability(s.pods.enforcedMatrix, "seed policies before etcd goes away")
        let established = try OpenConnection(from: s.frontend, to: s.backend, port: 8080)
        defer { established.close() }
        XCTAssertTrue(established.exchange(), "\(established) works before etcd goes away")

        s.etcd.stopAll()
        let started = Date()
        let refused = try s.agents[1].api(
            .PUT, "/v1/policy", try JSON.parse(try policyDocument(name: "allow-all-to-frontend")))
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(refused.status, 503, "\(refused)")
        XCTAssertTrue(
            refused.json?["error"]?["message"]?.stringValue?.contains("etcd") ?? false, "names etcd: \(refused)")
        XCTAssertLessThan(elapsed, 5, "answered within 5 s")
        let deleteRefused = try s.agents[2].api(.DELETE, "/v1/policy?all=true")
        XCTAssertEqual(deleteRefused.status, 503, "\(deleteRefused)")
        XCTAssertEqual(
            try s.agents.map { try policy(of: $0)["revision"]?.intValue }, Array(repeating: revision, count: 3),
            "nothing changed on any node")
        XCTAssertTrue(established.exchange(), "\(established) keeps working without etcd")
        assertReachability(s.pods.enforcedMatrix, "seed policies without etcd")

        // A restart while etcd is still away: the node restores its saved policy and does not wait for etcd.
        try s.agents[1].restart()
        let restarted = try policy(of: s.agents[1])
        XCTAssertEqual(restarted["revision"]?.intValue, revision, "the restarted node's revision")
        XCTAssertEqual(restarted["policies"]?.arrayValue?.count, 7)
        try s.agents[1].waitForPolicyRevision()
        assertReachability(s.pods.enforcedMatrix, "seed policies after node 2 restarted without etcd")

        try s.etcd.startAll()
        try s.etcd.waitHealthy()
        let answer = try s.agents[1].api(
            .PUT, "/v1/policy", try JSON.parse(try policyDocument(name: "allow-all-to-frontend")), timeout: 20)
        XCTAssertEqual(answer.status, 200, "\(answer)")
        let next = answer.json?["revision"]?.intValue ?? -1
        XCTAssertEqual(next, revision + 1, "\(answer)")
        try waitForRevision(next, on: s.agents)
        assertReachability(
            [
                Probe(from: s.backend, to: s.frontend, port: 80, .passes),
                Probe(from: s.adminTool, to: s.frontend, port: 80, .passes),
                Probe(from: s.frontend, to: s.backend, port: 9090, .dropped),
                Probe(from: s.backend, to: s.postgres, port: 5432, .passes),
            ], "an import on node 2 once etcd is back")
    }

    func testEtcdThatLostItsDataGetsThePolicyBackFromTheNodes() throws {
        let cluster = try makeCluster(nodes: 3)
        let etcd = try makeEtcd(members: 3, on: cluster)
        let agents = try startClusterAgents(on: cluster, etcd: etcd)
        let revision = try importSeedPolicies(on: agents[0])
        try waitForRevision(revision, on: agents)
        let documents = try policy(of: agents[0])["policies"]

        // Every member's data gone: a new, empty etcd cluster on the same addresses.
        let netns = cluster.nodes[0].nodeNetns
        let marker = "nodeagent/na\(cluster.tag)/test-marker"
        try etcd.put(marker, "old data", from: netns)
        etcd.stopAll()
        for member in etcd.members { try FileManager.default.removeItem(atPath: member.dataDirectory) }
        try etcd.startAll()
        try etcd.waitHealthy()
        XCTAssertNil(try etcd.get(marker, from: netns), "etcd's data is gone")
        let revisionKey = "nodeagent/na\(cluster.tag)/policies/revision"
        let deadline = Date() + 10
        var stored: String?
        while Date() < deadline {
            stored = try? etcd.get(revisionKey, from: netns)
            if stored != nil { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        XCTAssertEqual(
            stored.flatMap { try? JSON.parse($0) }?["revision"]?.intValue, revision,
            "a node wrote its policy back with its revision: \(stored ?? "nothing")")
        let listed = try etcd.etcdctl(
            ["get", "--prefix", "--keys-only", "nodeagent/na\(cluster.tag)/policies/namespaced/"], from: netns)
        XCTAssertEqual(listed.stdout.split(separator: "\n").count, 7, "the seed's documents are back: \(listed)")
        for (index, agent) in agents.enumerated() {
            let current = try policy(of: agent)
            XCTAssertEqual(current["revision"]?.intValue, revision, "node \(index + 1) kept its revision")
            XCTAssertEqual(current["policies"], documents, "node \(index + 1) kept its policy")
        }

        let answer = try agents[2].api(
            .PUT, "/v1/policy", try JSON.parse(try policyDocument(name: "allow-all-to-frontend")), timeout: 20)
        XCTAssertEqual(answer.status, 200, "\(answer)")
        try waitForRevision(revision + 1, on: agents)
        XCTAssertEqual(try policyNames(agents).map(\.count), [9, 9, 9], "the seed's documents and the new two")
    }

    /// Policies letting the pods of api-tier reach the frontend's port 80 (the frontend's ingress, their egress).
    private func policyDocument(name: String) throws -> String {
        let ingress: JSON = [
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": ["name": .string(name), "namespace": "web-tier"],
            "spec": [
                "endpointSelector": ["matchLabels": ["app": "frontend"]],
                "ingress": [
                    [
                        "fromEndpoints": [["matchLabels": ["k8s:io.kubernetes.pod.namespace": "api-tier"]]],
                        "toPorts": [["ports": [["port": "80", "protocol": "TCP"]]]],
                    ]
                ],
            ],
        ]
        let egress: JSON = [
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": ["name": .string("\(name)-egress"), "namespace": "api-tier"],
            "spec": [
                "endpointSelector": [:],
                "egress": [
                    [
                        "toEndpoints": [
                            ["matchLabels": ["k8s:io.kubernetes.pod.namespace": "web-tier", "app": "frontend"]]
                        ],
                        "toPorts": [["ports": [["port": "80", "protocol": "TCP"]]]],
                    ]
                ],
            ],
        ]
        return JSON.array([ingress, egress]).serialized()
    }
}
