import AgentAPI
import Foundation
import XCTest

/// Identities released through the agents: once no node's endpoint uses a label set, its number leaves etcd after
/// the grace period and every node forgets it.
final class ClusterIdentityReleaseTests: EndToEndTestCase {
    func testAnIdentityNoEndpointUsesIsReleasedAfterTheGracePeriodAndForgottenEverywhere() throws {
        let cluster = try makeCluster(nodes: 2)
        let etcd = try makeEtcd(members: 1, on: cluster)
        let agents = try startClusterAgents(
            on: cluster, etcd: etcd,
            options: ["identity-gc-interval": "200ms", "identity-gc-grace": "1500ms"])
        let root = "nodeagent/na\(cluster.tag)/identities/"
        let observer = cluster.nodes[0].nodeNetns
        let pod = try cluster.nodes[0].addPod(namespace: "gc", name: "batch", dualStack: false)
        let endpoint = try agents[0].registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=batch-\(cluster.tag)"])
        let id = try XCTUnwrap(endpoint["identity"]?["id"]?.intValue)
        XCTAssertGreaterThanOrEqual(id, 256, "a cluster identity")

        try eventually("node1's reference written") {
            try etcd.get(root + "refs/\(id)/\(cluster.nodes[0].nodeName)", from: observer) != nil
        }
        try eventually("node2 learned it") { try agents[1].api(.GET, "/v1/identity/\(id)").status == 200 }
        // Referenced: kept well past the grace period.
        Thread.sleep(forTimeInterval: 2.5)
        XCTAssertNotNil(try etcd.get(root + "id/\(id)", from: observer), "an identity in use is kept")

        let deleted = try agents[0].api(.DELETE, "/v1/endpoint/1")
        XCTAssertTrue((200..<300).contains(deleted.status), "\(deleted)")
        let dropped = Date()
        try eventually("the reference withdrawn") {
            try etcd.get(root + "refs/\(id)/\(cluster.nodes[0].nodeName)", from: observer) == nil
        }
        try eventually("the identity released") { try etcd.get(root + "id/\(id)", from: observer) == nil }
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(dropped), 1.5, "not before the grace period")
        XCTAssertEqual(
            try etcd.etcdctl(["get", root + "labels/", "--prefix", "--keys-only"], from: observer).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines), "", "the label index entry went with it")
        try eventually("node2 forgot it") { try agents[1].api(.GET, "/v1/identity/\(id)").status == 404 }
    }

    /// The identity an endpoint uses vanishes from etcd (released while the node was away), and the node's lease
    /// is lost: writing its reference again is refused, and the node restores the number for its labels.
    func testANodeWhoseIdentityWasReleasedWhileInUseRestoresIt() throws {
        let cluster = try makeCluster(nodes: 2)
        let etcd = try makeEtcd(members: 1, on: cluster)
        let agents = try startClusterAgents(on: cluster, etcd: etcd)
        let root = "nodeagent/na\(cluster.tag)/identities/"
        let observer = cluster.nodes[0].nodeNetns
        let pod = try cluster.nodes[0].addPod(namespace: "gc", name: "web", dualStack: false)
        let endpoint = try agents[0].registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=web-\(cluster.tag)"])
        let id = try XCTUnwrap(endpoint["identity"]?["id"]?.intValue)
        let reference = root + "refs/\(id)/\(cluster.nodes[0].nodeName)"
        try eventually("the reference written") { try etcd.get(reference, from: observer) != nil }
        let stored = try XCTUnwrap(try etcd.get(root + "id/\(id)", from: observer))
        try eventually("node2 learned it") { try agents[1].api(.GET, "/v1/identity/\(id)").status == 200 }

        let listing = try etcd.etcdctl(["get", reference, "-w", "json"], from: observer)
        // Read from the text: the header's member id can exceed Int64, which JSON.parse rejects.
        let leaseText = listing.stdout.firstMatch(of: /"lease":(\d+)/).map { String($0.1) }
        let lease = try XCTUnwrap(leaseText.flatMap { Int64($0) }, listing.stdout)
        for key in [root + "id/\(id)", root + "labels/"] {
            XCTAssertTrue(try etcd.etcdctl(["del", key, "--prefix"], from: observer).succeeded)
        }
        XCTAssertTrue(try etcd.etcdctl(["lease", "revoke", String(lease, radix: 16)], from: observer).succeeded)

        // Only the refused reference's handler writes an identity under a number it already had.
        try eventually("the identity restored under its number") {
            try etcd.get(root + "id/\(id)", from: observer) == stored
        }
        try eventually("the reference written again") { try etcd.get(reference, from: observer) != nil }
        try eventually("node2 knows it again") { try agents[1].api(.GET, "/v1/identity/\(id)").status == 200 }
        XCTAssertEqual(try agents[0].api(.GET, "/v1/endpoint/1").json?["identity"]?["id"]?.intValue, id)
    }

    /// The store releases a number before this node's watch has delivered the release, and then gives it to labels
    /// this node asks a number for: the node takes the store's answer over its stale copy, and the number's new pod
    /// gets none of the rights the old labels had, before the watch catches up and after.
    func testANumberReleasedBeforeTheNodeSawItGoesToNewLabelsWithoutTheOldLabelsRights() throws {
        let cluster = try makeCluster(nodes: 1)
        let etcd = try makeEtcd(members: 1, on: cluster)
        let node = cluster.nodes[0]
        let agent = try XCTUnwrap(
            try startClusterAgents(
                on: cluster, etcd: etcd, options: ["identity-gc-interval": "200ms", "identity-gc-grace": "1500ms"]
            ).first)
        let root = "nodeagent/na\(cluster.tag)/identities/"
        let db = try node.addPod(namespace: "gc", name: "db", dualStack: false)
        try agent.registerEndpoint(id: 1, pod: db, labels: ["k8s:app=db"])
        _ = try TCPServer(on: db, port: 5432, in: node)
        let put = try agent.api(.PUT, "/v1/policy", .array([Self.trustedToDB]))
        let revision = try XCTUnwrap(put.json?["revision"]?.intValue, "PUT /v1/policy: \(put)")
        try eventually("policy revision \(revision)") {
            try agent.getJSON("/v1/policy")["revision"]?.intValue == revision
        }
        try agent.waitForPolicyRevision()
        let trusted = try node.addPod(namespace: "gc", name: "trusted", dualStack: false)
        let old = try XCTUnwrap(
            try agent.registerEndpoint(id: 2, pod: trusted, labels: ["k8s:app=trusted"])["identity"]?["id"]?.intValue)
        assertReachability([Probe(from: trusted, to: db, port: 5432, .passes)], "the trusted pod, before")

        // The node's watches go quiet: what etcd sends on the connections open now is dropped in its namespace.
        let quiet = try EtcdWatchBlock(in: node.nodeNetns)
        let deleted = try agent.api(.DELETE, "/v1/endpoint/2")
        XCTAssertTrue((200..<300).contains(deleted.status), "\(deleted)")
        try eventually("identity \(old) released in etcd") {
            try etcd.get(root + "id/\(old)", from: node.nodeNetns) == nil
        }
        XCTAssertEqual(
            try agent.getJSON("/v1/identity/\(old)")["labels"]?.arrayValue?.contains(.string("k8s:app=trusted")), true,
            "the node has not seen the release")

        let intruder = try node.addPod(namespace: "gc", name: "intruder", dualStack: false)
        let taken = try agent.registerEndpoint(id: 3, pod: intruder, labels: ["k8s:app=intruder"])
        XCTAssertEqual(taken["identity"]?["id"]?.intValue, old, "the store's lowest free number: the released one")
        assertReachability(
            [Probe(from: intruder, to: db, port: 5432, .dropped)], "the number's new pod, before the watch caught up")

        // Once a number written after the release is known here, the watch has delivered the release before it.
        try quiet.lift()
        try etcd.put(root + "id/60000", #"{"labels": ["k8s:app=marker"]}"#, from: node.nodeNetns)
        try eventually("the watch caught up", timeout: 20) {
            try agent.api(.GET, "/v1/identity/60000").status == 200
        }
        let labels = try agent.getJSON("/v1/identity/\(old)")["labels"]?.arrayValue?.compactMap(\.stringValue)
        XCTAssertEqual(labels, ["k8s:app=intruder", "k8s:io.kubernetes.pod.namespace=gc"])
        let again = try node.addPod(namespace: "gc", name: "trusted-again", dualStack: false)
        let renumbered = try agent.registerEndpoint(id: 4, pod: again, labels: ["k8s:app=trusted"])
        XCTAssertNotEqual(renumbered["identity"]?["id"]?.intValue, old, "the trusted labels get another number")
        assertReachability(
            [
                Probe(from: intruder, to: db, port: 5432, .dropped),
                Probe(from: again, to: db, port: 5432, .passes),
            ], "after the watch caught up")
    }

    /// Ingress to `app=db` of namespace `gc` on TCP 5432, from `app=trusted` only.
    private static let trustedToDB: JSON = [
        "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": ["name": "trusted-to-db", "namespace": "gc"],
        "spec": [
            "endpointSelector": ["matchLabels": ["app": "db"]],
            "ingress": [
                [
                    "fromEndpoints": [["matchLabels": ["app": "trusted"]]],
                    "toPorts": [["ports": [["port": "5432", "protocol": "TCP"]]]],
                ]
            ],
        ],
    ]

    private func eventually(_ what: String, timeout: TimeInterval = 10, _ condition: () throws -> Bool) throws {
        let deadline = Date() + timeout
        while Date() < deadline {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        XCTFail("timed out waiting for \(what)")
    }
}
