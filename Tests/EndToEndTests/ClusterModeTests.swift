import AgentAPI
import Foundation
import XCTest

/// Cluster mode with real etcd and real traffic: three nodes on an underlay, each running an agent, share
/// identities, pod addresses and nodes through a three-member etcd cluster, so a policy selects pods of other
/// nodes by their labels.
final class ClusterModeTests: EndToEndTestCase {
    private func importPolicy(_ name: String, into agent: AgentProcess) throws {
        let result = try agent.nodectl("policy", "import", try fixture(name))
        XCTAssertEqual(result.status, 0, "nodectl policy import \(name): \(result.stderr)")
        try agent.waitForPolicyRevision()
    }

    func testSeedScenarioAcrossNodesEnforcesTheSingleNodeMatrix() throws {
        let s = try makeClusterSeedScenario()
        // Node 1 gives backend-api (on node 2) the identity node 2 allocated, and knows where it runs.
        let entry = try s.agents[0].api(.GET, "/v1/ipcache/\(s.backend.ipv4)")
        XCTAssertEqual(entry.status, 200, "\(entry)")
        XCTAssertEqual(entry.json?["source"]?.stringValue, "remote", "\(entry)")
        XCTAssertEqual(entry.json?["node"]?.stringValue, s.cluster.nodes[1].nodeName, "\(entry)")
        XCTAssertEqual(entry.json?["pod"]?.stringValue, "api-tier/backend-api", "\(entry)")
        XCTAssertEqual(entry.json?["identity"]?.intValue, s.identities["backend-api"], "\(entry)")
        XCTAssertEqual(
            entry.json?["labels"]?.arrayValue?.compactMap(\.stringValue).contains("k8s:app=backend-api"), true,
            "the identity's labels are known on node 1: \(entry)")
        assertReachability(
            [
                Probe(from: s.frontend, to: s.backend, port: 8080, .passes),
                Probe(from: s.frontend, to: s.postgres, port: 5432, .passes),
                Probe(from: s.adminTool, to: s.backend, port: 9090, .passes),
                Probe(from: s.backend, to: s.frontend, port: 80, .passes),
            ], "no policy: the nodes route each other's pods")

        // Imported once, on node 1: the policy lives in etcd and every node applies it.
        try importPolicy("default-deny-all.yaml", into: s.agents[0])
        try importPolicy("allow-traffic-policy.yaml", into: s.agents[0])
        for agent in s.agents.dropFirst() { try agent.waitForPolicyRevision() }
        assertReachability(s.pods.enforcedMatrix, "seed policies, pods on three nodes")

        // A pod deleted on node 2 is gone from node 1's ipcache within a second.
        let deleted = try s.agents[1].api(.DELETE, "/v1/endpoint/3")
        XCTAssertEqual(deleted.status, 200, "\(deleted)")
        let started = Date()
        var status = 0
        repeat {
            status = try s.agents[0].api(.GET, "/v1/ipcache/\(s.webOther.ipv4)").status
            if status == 404 { break }
            Thread.sleep(forTimeInterval: 0.01)
        } while Date().timeIntervalSince(started) < 2
        XCTAssertEqual(status, 404, "node 1 still has web-other's entry")
        XCTAssertLessThan(Date().timeIntervalSince(started), 1, "gone from node 1 within a second")
        try s.agents[0].waitForRemoteEndpoints(3)
    }

    func testTheSameLabelsHaveTheSameIdentityOnEveryNode() throws {
        let cluster = try makeCluster(nodes: 3)
        let etcd = try makeEtcd(members: 3, on: cluster)
        let agents = try startClusterAgents(on: cluster, etcd: etcd)
        // Created on all three nodes at once: the allocations race in etcd.
        let pods = try cluster.nodes.map {
            try $0.addPod(namespace: "shop", name: "cart-\($0.nodeName)", dualStack: false)
        }
        let numbers = Locked([Int64?](repeating: nil, count: 3))
        let errors = Locked([String]())
        DispatchQueue.concurrentPerform(iterations: 3) { index in
            do {
                let endpoint = try agents[index].registerEndpoint(id: 7, pod: pods[index], labels: ["k8s:app=cart"])
                numbers.withLock { $0[index] = endpoint["identity"]?["id"]?.intValue }
            } catch {
                errors.withLock { $0.append("node \(index + 1): \(error)") }
            }
        }
        XCTAssertEqual(errors.current, [], "every node created its endpoint")
        let identities = numbers.current
        XCTAssertEqual(Set(identities.compactMap { $0 }).count, 1, "one identity for one label set: \(identities)")
        XCTAssertEqual(identities.compactMap { $0 }.count, 3)
        if let number = identities[0] {
            XCTAssertTrue((256...65535).contains(number), "cluster range: \(number)")
            let stored = try etcd.get(
                "nodeagent/na\(cluster.tag)/identities/id/\(number)", from: cluster.nodes[0].nodeNetns)
            XCTAssertEqual(stored.flatMap { try? JSON.parse($0) }?["labels"]?.arrayValue?.count, 2, stored ?? "none")
        }
        // Every node lists the identity (with the node's reference held or not) under the same number.
        for agent in agents {
            let listed = try agent.api(.GET, "/v1/identity/\(identities[0] ?? 0)")
            XCTAssertEqual(listed.status, 200, "\(listed)")
        }
    }
}
