import Foundation
import Glibc
import XCTest

/// The cluster harness on its own, without an agent: nodes on one underlay, a real three-member etcd cluster that
/// every node reaches, pod traffic between nodes once routes exist, and nothing left behind. The cluster-mode
/// suites stand on this, so it must work before any of them can blame the agent.
final class ClusterHarnessTests: EndToEndTestCase {
    func testEveryNodeUsesEtcdThroughMemberLossAndAFullRestart() throws {
        let cluster = try makeCluster()
        let etcd = try makeEtcd(on: cluster)
        XCTAssertEqual(
            etcd.clientEndpoints,
            ["http://192.168.86.101:2379", "http://192.168.86.102:2379", "http://192.168.86.103:2379"])
        let nodes = cluster.nodes
        for node in nodes {
            try etcd.put(key(node), try XCTUnwrap(node.underlay).ipv4, from: node.nodeNetns)
        }
        for reader in nodes {
            for writer in nodes {
                XCTAssertEqual(
                    try etcd.get(key(writer), from: reader.nodeNetns), writer.underlay?.ipv4,
                    "\(reader.nodeName) reads what \(writer.nodeName) wrote")
            }
        }
        XCTAssertNil(try etcd.get("/nodeagent-test/missing", from: nodes[0].nodeNetns))

        // A member dies as in a crash: the two others keep a quorum.
        etcd.kill(0)
        XCTAssertFalse(etcd.isRunning(0))
        let alone = try etcd.etcdctl(
            ["get", key(nodes[0])], from: nodes[1].nodeNetns, endpoints: [etcd.clientEndpoints[0]])
        XCTAssertFalse(alone.succeeded, "the killed member answers nothing: \(alone.stdout)")
        try etcd.put("/nodeagent-test/during-loss", "written by node2", from: nodes[1].nodeNetns)
        XCTAssertEqual(try etcd.get("/nodeagent-test/during-loss", from: nodes[2].nodeNetns), "written by node2")

        // Started again on its data directory it rejoins and catches up with what it missed.
        try etcd.start(0)
        try etcd.waitHealthy()
        XCTAssertEqual(
            try etcd.get("/nodeagent-test/during-loss", from: nodes[0].nodeNetns, endpoints: [etcd.clientEndpoints[0]]),
            "written by node2")

        // With every member down a request fails, and within the client's timeouts rather than hanging.
        etcd.stopAll()
        XCTAssertEqual(etcd.runningMembers, [])
        let started = Date()
        let unavailable = try etcd.etcdctl(["get", key(nodes[0])], from: nodes[0].nodeNetns, commandTimeout: 1)
        XCTAssertFalse(unavailable.succeeded, "no member runs: \(unavailable.stdout)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "a request to a stopped cluster fails promptly")

        // All started again: the data is back.
        try etcd.startAll()
        try etcd.waitHealthy()
        XCTAssertEqual(etcd.runningMembers, [0, 1, 2])
        for node in nodes {
            XCTAssertEqual(try etcd.get(key(node), from: nodes[2].nodeNetns), node.underlay?.ipv4)
        }
        XCTAssertEqual(try etcd.get("/nodeagent-test/during-loss", from: nodes[1].nodeNetns), "written by node2")
    }

    func testPodsOnTwoNodesTalkAcrossTheUnderlayOnceTheirCIDRsAreRouted() throws {
        let cluster = try makeCluster()
        let (node1, node2, node3) = (cluster.nodes[0], cluster.nodes[1], cluster.nodes[2])
        XCTAssertEqual(cluster.nodes.map(\.nodeNetns), (1...3).map { "na\(cluster.tag)-node\($0)" })
        XCTAssertEqual(cluster.nodes.map(\.addressing.ipv4CIDR), ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"])
        XCTAssertEqual(node2.gatewayIPv4, "10.244.2.1")
        let client = try node1.addPod(namespace: "web-tier", name: "client")
        let server = try node2.addPod(namespace: "api-tier", name: "server")
        XCTAssertTrue(client.ipv4.hasPrefix("10.244.1."), client.ipv4)
        XCTAssertTrue(server.ipv4.hasPrefix("10.244.2."), server.ipv4)
        XCTAssertTrue(try XCTUnwrap(server.ipv6).hasPrefix("fd00:\(cluster.tag):2::"), server.ipv6 ?? "")
        let echo = try TCPServer(on: server, port: 8080, in: node2)

        // The nodes see each other on the underlay (a refusal is an answer from the peer's kernel).
        let underlay3 = try XCTUnwrap(node3.underlay)
        XCTAssertEqual(try tcpConnect(from: node1.nodeNetns, to: underlay3.ipv4, port: 9).outcome, .refused)
        XCTAssertEqual(try tcpConnect(from: node1.nodeNetns, to: underlay3.ipv6, port: 9).outcome, .refused)

        // The harness routes nothing between nodes: that is the agent's job.
        let unrouted = try tcpConnect(from: client, to: server, port: 8080, timeout: 0.5)
        XCTAssertFalse(unrouted.passed, "no route to node2's pods yet: \(unrouted)")

        try cluster.addPodCIDRRoutes()
        let routes = try Shell.run(["ip", "-n", node1.nodeNetns, "-4", "route", "show", "10.244.2.0/24"])
        XCTAssertTrue(routes.contains("via \(try XCTUnwrap(node2.underlay).ipv4) dev eth0"), routes)
        let ipv4 = try tcpConnect(from: client, to: server, port: 8080)
        XCTAssertTrue(ipv4.passed, "client on node1 → server on node2: \(ipv4)")
        let ipv6 = try tcpConnect(from: client, to: server, port: 8080, ipv6: true)
        XCTAssertTrue(ipv6.passed, "client on node1 → server on node2 over IPv6: \(ipv6)")
        XCTAssertEqual(echo.peers, [client.ipv4, try XCTUnwrap(client.ipv6)], "the server sees the pod's own address")

        XCTAssertEqual(cluster.destroy(), [])
        XCTAssertEqual(Netns.names(withPrefix: "na\(cluster.tag)-"), [], "no namespace of the run remains")
        XCTAssertEqual(cluster.leftovers(), [])
    }

    /// A crashed run's cluster (nodes, pods, underlay, etcd members still running) is swept by the next run once
    /// its owner is gone, like a single node's.
    func testAbandonedClusterIsSweptWithItsEtcdMembers() throws {
        try requireNetworkPrivileges()
        try requireEtcd()
        let cluster = try ClusterTopology(nodes: 2)
        defer { cluster.destroy() }
        let etcd = try EtcdCluster(members: 1, on: cluster)
        let pod = try cluster.nodes[0].addPod(namespace: "web-tier", name: "client")
        let tag = cluster.tag
        XCTAssertEqual(
            Set(Netns.names(withPrefix: "na\(tag)-")),
            Set(["na\(tag)-underlay", "na\(tag)-node1", "na\(tag)-node2", "na\(tag)-etcd1", pod.netns]))
        let etcdPid = try XCTUnwrap(etcd.pid(0))
        XCTAssertEqual(Topology.processes(inNamespaces: ["na\(tag)-etcd1"]), [etcdPid])

        // The owner "crashed": no process has the largest pid.
        try "\(pid_t.max)\n".write(toFile: "\(RunMarker.directory)/\(tag)", atomically: true, encoding: .utf8)
        Topology.sweepAbandoned()

        XCTAssertEqual(Topology.leftovers(tag: tag), [])
        let deadline = Date() + 5
        while etcd.isRunning(0) && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(etcd.isRunning(0), "the etcd member left in its namespace was killed")
        XCTAssertEqual(cluster.destroy(), [], "destroying a swept cluster is harmless")
    }

    private func key(_ node: Topology) -> String { "/nodeagent-test/nodes/\(node.nodeName)" }
}
