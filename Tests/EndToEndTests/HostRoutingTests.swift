import AgentAPI
import Foundation
import Glibc
import XCTest

/// Packets between two pods of one node with `host-routing: bpf` (the default): the source's hook hands an allowed
/// packet straight into the destination pod after the destination's ingress verdict, so the destination's host-side
/// interface never transmits it; with `kernel` the node's routing does, and to_endpoint decides. Both enforce the
/// same policy and forward the same way (one hop off the TTL).
final class HostRoutingTests: EndToEndTestCase {
    private struct Pods {
        var topology: Topology
        var agent: AgentProcess
        var client: Pod
        var other: Pod
        var server: Pod
        var serverIdentity: JSON
    }

    /// A server whose ingress admits `app=client` only; the two clients have no egress policy, so only the
    /// server's ingress verdict can refuse `other`.
    private func makePods() throws -> Pods {
        let topology = try makeTopology()
        let client = try topology.addPod(namespace: "lab", name: "client")
        let other = try topology.addPod(namespace: "lab", name: "other")
        let server = try topology.addPod(namespace: "lab", name: "server")
        _ = try TCPServer(on: server, port: 8080, in: topology)
        let agent = try startAgent(in: topology)
        _ = try agent.registerEndpoint(id: 1, pod: client, labels: ["k8s:app=client"])
        _ = try agent.registerEndpoint(id: 2, pod: other, labels: ["k8s:app=other"])
        let registered = try agent.registerEndpoint(id: 3, pod: server, labels: ["k8s:app=server"])
        try agent.importPolicies([
            networkPolicy(
                "lab", "server-from-client",
                spec: [
                    "endpointSelector": ["matchLabels": ["app": "server"]],
                    "ingress": [["fromEndpoints": [["matchLabels": ["app": "client"]]]]],
                ])
        ])
        let identity = try XCTUnwrap(registered["identity"]?["id"])
        return Pods(
            topology: topology, agent: agent, client: client, other: other, server: server, serverIdentity: identity)
    }

    /// Packets the interface has transmitted, from the kernel's counters in namespace `netns`.
    private func transmitted(_ interface: String, in netns: String) throws -> Int64 {
        let text = try Shell.run(["ip", "-n", netns, "-s", "-j", "link", "show", "dev", interface])
        let link = try XCTUnwrap(try JSON.parse(text).arrayValue?.first)
        return try XCTUnwrap(link["stats64"]?["tx"]?["packets"]?.intValue, "\(text)")
    }

    /// Exchanges on `count` new connections from the client to the server, over IPv4 and IPv6, and returns how many
    /// packets the server's host-side interface transmitted meanwhile.
    private func serverInterfaceCount(_ p: Pods, connections count: Int) throws -> Int64 {
        let before = try transmitted(p.server.hostInterface, in: p.topology.nodeNetns)
        for i in 0..<count {
            let result = try tcpConnect(from: p.client, to: p.server, port: 8080, ipv6: i % 2 == 1)
            XCTAssertTrue(result.passed, "connection \(i): \(result)")
        }
        return try transmitted(p.server.hostInterface, in: p.topology.nodeNetns) - before
    }

    /// The TTL (IPv4) or hop limit (IPv6) a datagram the client sends with 64 arrives at the server with.
    private func arrivingTTL(_ p: Pods, ipv6: Bool) throws -> Int32? {
        let port: UInt16 = 7007
        let fd = try Sockets.bindAny(in: p.server.netns, port: port, type: SOCK_DGRAM)
        defer { close(fd) }
        // A dual-stack socket: an IPv6 datagram's hop limit, an IPv4 one's TTL.
        try Sockets.setOption(fd, Int32(IPPROTO_IPV6), IPV6_RECVHOPLIMIT, 1)
        try Sockets.setOption(fd, Int32(IPPROTO_IP), IP_RECVTTL, 1)
        let address = try SocketAddress(ip: try p.server.address(ipv6: ipv6), port: port)
        let sender = try Sockets.make(in: p.client.netns, family: address.family, type: SOCK_DGRAM)
        defer { close(sender) }
        try Sockets.setOption(
            sender, ipv6 ? Int32(IPPROTO_IPV6) : Int32(IPPROTO_IP), ipv6 ? IPV6_UNICAST_HOPS : IP_TTL, 64)
        let payload: [UInt8] = Array("ttl".utf8)
        let sent = address.withSockaddr { sendto(sender, payload, payload.count, 0, $0, $1) }
        guard sent == payload.count, Sockets.wait(fd, for: Int16(POLLIN), until: Date() + 2) != 0 else { return nil }
        var data = [UInt8](repeating: 0, count: 64)
        var control = [UInt8](repeating: 0, count: 64)
        let received = data.withUnsafeMutableBytes { buffer in
            control.withUnsafeMutableBytes { ancillary in
                var vector = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    message.msg_control = ancillary.baseAddress
                    message.msg_controllen = ancillary.count
                    return recvmsg(fd, &message, 0) >= 0 ? message.msg_controllen : 0
                }
            }
        }
        // One cmsghdr (length: 8 bytes, level, type: 4 each), then its int.
        guard received >= 20 else { return nil }
        let words = control.withUnsafeBytes { bytes in
            [8, 12, 16].map { bytes.loadUnaligned(fromByteOffset: $0, as: Int32.self) }
        }
        let (level, type, value) = (words[0], words[1], words[2])
        let hops = (level == IPPROTO_IPV6 && type == IPV6_HOPLIMIT) || (level == IPPROTO_IP && type == IP_TTL)
        return hops ? value : nil
    }

    /// The filled slots of the program array from_endpoint tail-calls through, as the agent's metrics count them.
    private func slotsFilled(_ p: Pods) throws -> Double? {
        try p.agent.scrape().value("nodeagent_map_entries", ["map": "na_local_prog"])
    }

    func testPodToPodTrafficSkipsTheNodesStackAndStillMeetsIngressPolicy() throws {
        let p = try makePods()
        XCTAssertEqual(try p.agent.getJSON("/v1/config")["host-routing"], "bpf", "the default")
        // The node learns each pod's MAC on the first packets, which take its stack (no neighbor entry yet).
        for ipv6 in [false, true] {
            XCTAssertTrue(try tcpConnect(from: p.client, to: p.server, port: 8080, ipv6: ipv6).passed)
        }

        let direct = try serverInterfaceCount(p, connections: 10)
        // Ten connections are over 50 packets to the server; what the interface sends meanwhile is the node's own
        // neighbor traffic, at most a few packets.
        XCTAssertLessThanOrEqual(direct, 4, "the server's packets went past its host-side interface")
        XCTAssertEqual(try arrivingTTL(p, ipv6: false), 63, "one hop, as the node's routing counts it")
        XCTAssertEqual(try arrivingTTL(p, ipv6: true), 63)

        for ipv6 in [false, true] {
            XCTAssertTrue(
                try tcpConnect(from: p.other, to: p.server, port: 8080, ipv6: ipv6).dropped,
                "the server's ingress policy refuses another pod (ipv6: \(ipv6))")
        }
        let flows = try p.agent.waitForFlows {
            $0.contains { $0["verdict"] == "DROPPED" && $0["direction"] == "ingress" }
        }
        let drop = try XCTUnwrap(flows.last { $0["verdict"] == "DROPPED" && $0["direction"] == "ingress" })
        XCTAssertEqual(drop["destination"]?["identity"], p.serverIdentity, "the server's ingress verdict: \(drop)")

        XCTAssertEqual(try slotsFilled(p), 1, "deliver_local in its slot")

        // With the node's routing the same traffic leaves through the server's host-side interface.
        try p.agent.setConfig(["host-routing": "kernel"])
        XCTAssertEqual(try slotsFilled(p), 0, "the slot emptied")
        let routed = try serverInterfaceCount(p, connections: 10)
        XCTAssertGreaterThanOrEqual(routed, 50, "every packet to the server through its host-side interface")
        XCTAssertEqual(try arrivingTTL(p, ipv6: false), 63)
        XCTAssertEqual(try arrivingTTL(p, ipv6: true), 63)
        XCTAssertTrue(try tcpConnect(from: p.other, to: p.server, port: 8080).dropped, "to_endpoint refuses it")

        try p.agent.setConfig(["host-routing": "bpf"])
        XCTAssertLessThanOrEqual(try serverInterfaceCount(p, connections: 10), 4, "back past the stack")
    }

    /// deliver_local keeps the routing answers it got for about a second (na_local_routes): a route the node's
    /// operator changes under pods that keep talking takes effect within that, as it would through the stack.
    func testAChangedRouteToAPodTakesEffectWithinASecond() throws {
        let p = try makePods()
        let node = p.topology.nodeNetns
        let routes = [
            (family: "-4", prefix: "\(try p.server.address(ipv6: false))/32"),
            (family: "-6", prefix: "\(try p.server.address(ipv6: true))/128"),
        ]
        for ipv6 in [false, true] {
            XCTAssertTrue(try tcpConnect(from: p.client, to: p.server, port: 8080, ipv6: ipv6).passed)
        }
        XCTAssertLessThanOrEqual(try serverInterfaceCount(p, connections: 6), 4, "direct, answers kept")

        for route in routes {
            _ = try Shell.run(["ip", "-n", node, route.family, "route", "replace", "blackhole", route.prefix])
        }
        // One clock period is 2^30 ns: past it, no answer from before the change is used.
        Thread.sleep(forTimeInterval: 1.2)
        for ipv6 in [false, true] {
            XCTAssertFalse(
                try tcpConnect(from: p.client, to: p.server, port: 8080, ipv6: ipv6).passed,
                "a blackholed pod address is not delivered to (ipv6: \(ipv6))")
        }

        for route in routes {
            _ = try Shell.run([
                "ip", "-n", node, route.family, "route", "replace", route.prefix, "dev", p.server.hostInterface,
            ])
        }
        for ipv6 in [false, true] {
            XCTAssertTrue(try tcpConnect(from: p.client, to: p.server, port: 8080, ipv6: ipv6).passed)
        }
        XCTAssertLessThanOrEqual(try serverInterfaceCount(p, connections: 6), 4, "direct again")
    }

    /// A kube-proxy-style DNAT in the node's netfilter (a ClusterIP, a hostPort): the request reaches the server
    /// through the node's stack, so its replies must go back the same way for netfilter to give them the address the
    /// client sent to; delivered straight to the client they would come from the server's own address.
    func testRepliesOfAFlowTheNodesNATDeliveredGoBackThroughTheNode() throws {
        let p = try makePods()
        let frontend = "10.96.0.99"
        _ = try Shell.run([
            "ip", "netns", "exec", p.topology.nodeNetns, "iptables", "-t", "nat", "-A", "PREROUTING", "-d",
            "\(frontend)/32", "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", "\(p.server.ipv4):8080",
        ])
        for i in 0..<5 {
            let result = try tcpConnect(from: p.client.netns, to: frontend, port: 80)
            XCTAssertTrue(result.passed, "connection \(i) through the node's DNAT: \(result)")
        }
        XCTAssertTrue(try tcpConnect(from: p.other, to: p.server, port: 8080).dropped, "policy still holds")
        XCTAssertLessThanOrEqual(
            try serverInterfaceCount(p, connections: 4), 4, "pod to pod still goes straight in")
        let entries = try p.agent.api(.GET, "/v1/ct").json?["entries"]?.arrayValue ?? []
        let direct = entries.filter { ($0["flags"]?.arrayValue ?? []).contains("direct") }
        XCTAssertFalse(direct.isEmpty, "the flows deliver_local opened are marked: \(entries.prefix(3))")
    }

    func testDirectDeliveryKeepsWorkingWhileTheAgentIsDown() throws {
        let p = try makePods()
        XCTAssertTrue(try tcpConnect(from: p.client, to: p.server, port: 8080).passed)
        p.agent.kill(signal: SIGKILL)
        XCTAssertNotNil(p.agent.waitForExit())
        XCTAssertLessThanOrEqual(try serverInterfaceCount(p, connections: 4), 4, "the pinned slot still delivers")
        XCTAssertTrue(try tcpConnect(from: p.other, to: p.server, port: 8080).dropped, "and still enforces")
    }

    func testAnInvalidHostRoutingIsRefusedByName() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        for bad: JSON in ["fast", "BPF", 1, true] {
            assertAPIError(
                try agent.api(.PATCH, "/v1/config", ["host-routing": bad]), status: 400, code: "invalid-field",
                field: "host-routing", "\(bad.serialized())")
        }
        XCTAssertEqual(try agent.getJSON("/v1/config")["host-routing"], "bpf")
    }
}
