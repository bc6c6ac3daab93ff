import AgentAPI
import Foundation
import XCTest

/// Pod CIDRs from one cluster pool through etcd: agents configured alike (no node-index, no pod CIDR) claim
/// different subnets, publish them in their node entries, and route each other's.
final class ClusterIPAMTests: EndToEndTestCase {
    func testNodesSharingOneClusterPoolGetDifferentPodCIDRsAndRouteEachOthers() throws {
        let cluster = try makeCluster(nodes: 3)
        let etcd = try makeEtcd(members: 3, on: cluster)
        let pool = IPPrefix("10.245.0.0/16")!
        let ipam: JSON = ["cluster-pool-ipv4-cidr": .string(pool.description), "cluster-pool-ipv4-mask-size": 24]
        let agents = try startClusterAgents(on: cluster, etcd: etcd, ipam: ipam)
        let root = "nodeagent/na\(cluster.tag)/"

        func podCIDR(_ agent: AgentProcess) throws -> String? {
            let health = try agent.api(.GET, "/v1/healthz")
            let plugin = health.json?["plugins"]?.arrayValue?.first { $0["name"] == "ipam" }
            return plugin?["detail"]?["ipv4"]?["pod-cidr"]?.stringValue
        }
        let cidrs = try agents.map { try XCTUnwrap(try podCIDR($0), "the ipam plugin has a pod CIDR") }
        XCTAssertEqual(Set(cidrs).count, 3, "three different pod CIDRs: \(cidrs)")
        for cidr in cidrs {
            let prefix = try XCTUnwrap(IPPrefix(cidr))
            XCTAssertTrue(pool.contains(prefix) && prefix.length == 24, "\(cidr) is a /24 of the pool")
        }

        let observer = cluster.nodes[0].nodeNetns
        for (index, node) in cluster.nodes.enumerated() {
            XCTAssertEqual(try etcd.get(root + "ipam/pod-cidrs/" + cidrs[index], from: observer), node.nodeName)
            let entry = try XCTUnwrap(try etcd.get(root + "nodes/" + node.nodeName, from: observer))
            XCTAssertEqual(try JSON.parse(entry)["pod-cidrs"], [.string(cidrs[index])], "published: \(entry)")
        }

        // Every node routes the two others' pod CIDRs through their underlay addresses.
        for (index, node) in cluster.nodes.enumerated() {
            for (peerIndex, peer) in cluster.nodes.enumerated() where peerIndex != index {
                let via = "via \(try XCTUnwrap(peer.underlay).ipv4) "
                let deadline = Date() + 10
                var routes = ""
                repeat {
                    routes = try Shell.run(["ip", "-n", node.nodeNetns, "-4", "route", "show", cidrs[peerIndex]])
                    if routes.contains(via) { break }
                    Thread.sleep(forTimeInterval: 0.1)
                } while Date() < deadline
                XCTAssertTrue(routes.contains(via), "\(node.nodeName) → \(cidrs[peerIndex]): \(routes)")
            }
        }

        // A restart keeps the node's pod CIDR, with etcd and without it.
        try agents[1].restart()
        XCTAssertEqual(try podCIDR(agents[1]), cidrs[1])
        etcd.stopAll()
        try agents[2].restart()
        XCTAssertEqual(try podCIDR(agents[2]), cidrs[2], "the claim saved in the state directory")

        // Without etcd and without a saved claim, the start fails naming etcd rather than picking a CIDR.
        XCTAssertEqual(agents[0].stop(), .exited(0), agents[0].stderrTail())
        let directory = agents[0].stateDirectory
        let saved = try FileManager.default.contentsOfDirectory(atPath: directory).filter {
            $0.hasPrefix("cluster-pod-cidrs")
        }
        XCTAssertEqual(saved.count, 1, "the claim is kept in the state directory")
        for name in saved { try FileManager.default.removeItem(atPath: "\(directory)/\(name)") }
        XCTAssertThrowsError(try agents[0].start()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("cannot claim this node's pod CIDR") && text.contains("etcd"), text)
        }
    }
}
