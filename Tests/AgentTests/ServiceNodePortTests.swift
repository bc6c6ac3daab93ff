import AgentAPI
import CLibbpf
import DatapathCore
import Foundation
import Glibc
import XCTest

@testable import Agent

/// NodePort and external IP services for clients outside the node, with real traffic: a namespace outside the node
/// (joined to the node namespace by a veth underlay of the test's own, whose node side carries from_netdev and
/// to_netdev) connects to the node's address and node port, and to an external IP routed to the node. The backends'
/// host-side veths carry the endpoint programs, so their conntrack and ingress policy see the real client.
final class ServiceNodePortTests: XCTestCase {
    private var pods: ServicePods!
    private var object: BPFObject!
    private var balancer: SocketLoadBalancer!
    private var backendIfindexes: [UInt32] = []

    private static let nodePort: UInt16 = 30080
    private static let udpNodePort: UInt16 = 30053
    private static let serviceIdentity: UInt32 = 300

    private var outsideNetns: String { "nasl\(pods.tag)-x" }
    private var underlay: String { "sl\(pods.tag)u0" }
    private var octet: Int { Int(pods.tag.suffix(2), radix: 16)! }
    private var nodeAddress: String { "172.31.\(octet).1" }
    private var clientAddress: String { "172.31.\(octet).2" }
    private var externalIP: String { "203.0.113.\(octet)" }
    private var nodeAddress6: String { "fd00:31::1" }
    private var clientAddress6: String { "fd00:31::2" }

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("namespaces and BPF programs need root") }
        pods = try ServicePods(backends: 2)
        do {
            try setUpUnderlay()
            try setUpDatapath()
        } catch {
            tearDown()
            throw error
        }
    }

    override func tearDown() {
        // Deleting the namespaces takes the veths and their tc programs along.
        if let pods { _ = try? ScratchNetns.ip(["netns", "delete", outsideNetns]) }
        pods?.destroy()
        pods = nil
    }

    private func setUpUnderlay() throws {
        try ScratchNetns.ip(["netns", "add", outsideNetns])
        try ScratchNetns.ip([
            "-n", pods.nodeNetns, "link", "add", underlay, "type", "veth", "peer", "name", "eth0", "netns",
            outsideNetns,
        ])
        for command in [
            "link set \(underlay) up", "address add \(nodeAddress)/24 dev \(underlay)",
            "address add \(nodeAddress6)/64 dev \(underlay) nodad",
        ] {
            try ScratchNetns.ip(["-n", pods.nodeNetns] + command.split(separator: " ").map(String.init))
        }
        for command in [
            "link set lo up", "link set eth0 up", "address add \(clientAddress)/24 dev eth0",
            "address add \(clientAddress6)/64 dev eth0 nodad", "route add \(externalIP)/32 via \(nodeAddress)",
        ] {
            try ScratchNetns.ip(["-n", outsideNetns] + command.split(separator: " ").map(String.init))
        }
    }

    private func setUpDatapath() throws {
        object = try BPFObject.load(
            embedded: "endpoint", pinDirectory: nil,
            maxEntries: ["na_ct": 4096, "na_lb_flows": 4096, "na_ipcache": 64, "na_endpoints": 8, "na_policy": 8])
        let endpoints = try TypedMap<UInt32, na_endpoint_info>(XCTUnwrap(object.map(named: "na_endpoints")))
        let programs = try (
            XCTUnwrap(object.program(named: "from_endpoint")), XCTUnwrap(object.program(named: "to_endpoint")),
            XCTUnwrap(object.program(named: "from_netdev")), XCTUnwrap(object.program(named: "to_netdev"))
        )
        let (pods, underlay) = (pods!, underlay)
        backendIfindexes = try ScratchNetns.run(in: pods.nodeNetns) {
            [1, 2].map { if_nametoindex("sl\(pods.tag)h\($0)") }
        }
        for (index, ifindex) in zip([1, 2], backendIfindexes) {
            XCTAssertNotEqual(ifindex, 0, "backend \(index)'s host-side veth")
            var endpoint = na_endpoint_info()
            endpoint.ep_id = UInt32(10 + index)
            endpoint.identity = Self.serviceIdentity
            endpoint.flags = UInt32(NA_EP_HAS_IPV4) | UInt32(NA_EP_HAS_IPV6)
            setTupleBytes(&endpoint.ipv4, IPAddress(pods.ipv4(index))!.bytes)
            setTupleBytes(&endpoint.ipv6, IPAddress(pods.ipv6(index))!.bytes)
            try endpoints.update(ifindex, endpoint)
        }
        let ifindexes = backendIfindexes
        try ScratchNetns.run(in: pods.nodeNetns) {
            for ifindex in ifindexes {
                try TC.attach(programs.0, ifindex: Int32(ifindex), point: .ingress, links: nil)
                try TC.attach(programs.1, ifindex: Int32(ifindex), point: .egress, links: nil)
            }
            let device = Int32(if_nametoindex(underlay))
            try TC.attach(programs.2, ifindex: device, point: .ingress, links: nil)
            try TC.attach(programs.3, ifindex: device, point: .egress, links: nil)
        }
        balancer = try SocketLoadBalancer(object: object)
    }

    private func service(id: UInt32, frontend: String, port: UInt16, proto: UInt8 = IPProtocol.tcp, ipv6: Bool = false)
        -> LoadBalancedService
    {
        let backendPort = proto == IPProtocol.tcp ? ServicePods.tcpPort : ServicePods.udpPort
        return LoadBalancedService(
            id: id, frontend: ServiceFrontend(address: IPAddress(frontend)!, port: port, proto: proto),
            backends: [1, 2].map {
                ServiceBackend(address: IPAddress(ipv6 ? pods.ipv6($0) : pods.ipv4($0))!, port: backendPort)
            }, external: true)
    }

    /// The pods' client script in the outside namespace.
    private func client(_ arguments: [String]) throws -> [String: Any] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        process.arguments =
            [
                "--net=/var/run/netns/\(outsideNetns)", "--", "/usr/bin/python3",
                pods.scripts.appendingPathComponent("client.py").path,
            ] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0,
            let answer = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { throw ScratchError("client \(arguments) exited \(process.terminationStatus): \(text)") }
        return answer
    }

    /// 20 connections to frontend:port reach both backends, each through a handshake answered from frontend:port.
    private func checkTCP(_ frontend: String, _ port: UInt16, file: StaticString = #filePath, line: UInt = #line) throws
    {
        let answer = try client(["tcp", frontend, String(port), "20"])
        XCTAssertEqual(answer["errors"] as? [String: Int], [:], "connections to \(frontend)", file: file, line: line)
        let names = answer["names"] as? [String: Int] ?? [:]
        XCTAssertEqual(Set(names.keys), ["b1", "b2"], "20 connections reach both backends", file: file, line: line)
        XCTAssertEqual(answer["peers"] as? [String: Int], ["\(frontend):\(port)": 20], file: file, line: line)
    }

    /// Conntrack entries the backends' to_endpoint made for flows from `client`: their source identities.
    private func trackedIdentities(from client: String) throws -> [UInt32] {
        let conntrack = try TypedMap<na_ct_key, na_ct_value>(XCTUnwrap(object.map(named: "na_ct")))
        let address = try XCTUnwrap(IPAddress(client))
        var identities: [UInt32] = []
        for (key, value) in try conntrack.entries() where key.direction == UInt8(NA_DIR_INGRESS.rawValue) {
            var k = key
            let source = withUnsafeBytes(of: &k.saddr) { Array($0.prefix(address.bytes.count)) }
            if source == address.bytes { identities.append(value.src_identity) }
        }
        return identities
    }

    func testNodePortAndExternalIPReachEveryBackendAndAnswerFromTheirFrontend() throws {
        try balancer.apply(service(id: 1, frontend: nodeAddress, port: Self.nodePort))
        try balancer.apply(service(id: 2, frontend: externalIP, port: 80))
        try balancer.apply(
            service(id: 3, frontend: nodeAddress, port: Self.udpNodePort, proto: IPProtocol.udp))
        try balancer.apply(service(id: 4, frontend: nodeAddress6, port: Self.nodePort, ipv6: true))
        try checkTCP(nodeAddress, Self.nodePort)
        try checkTCP(externalIP, 80)
        try checkTCP(nodeAddress6, Self.nodePort)

        let udp = try client(["udp", nodeAddress, String(Self.udpNodePort), "5"])
        XCTAssertEqual(udp["sources"] as? [String: Int], ["\(nodeAddress):\(Self.udpNodePort)": 5], "\(udp)")

        // The backends' conntrack saw the real client, as world.
        let identities = try trackedIdentities(from: clientAddress)
        XCTAssertFalse(identities.isEmpty, "the backends tracked flows from the client's own address")
        XCTAssertEqual(Set(identities), [NA_ID_WORLD.rawValue])
    }

    /// A ClusterIP frontend is the cluster's: from outside, the node's address and port stay the node's own.
    func testAClusterIPFrontendIsNotReachableFromOutside() throws {
        var clusterIP = service(id: 5, frontend: nodeAddress, port: Self.nodePort)
        clusterIP.external = false
        try balancer.apply(clusterIP)
        let answer = try client(["refuse", nodeAddress, String(Self.nodePort)])
        XCTAssertEqual(answer["tcp"] as? String, "ECONNREFUSED", "the node's own closed port: \(answer)")
        XCTAssertTrue(try trackedIdentities(from: clientAddress).isEmpty, "no backend saw the client")
    }

    /// A backend reached back through the underlay is another node's pod: its answers would bypass this node, so
    /// the flow is dropped with its own reason instead of half-translated.
    func testABackendOnAnotherNodeIsADropWithItsReason() throws {
        let remote = "10.99.\(octet).5"
        try ScratchNetns.ip(["-n", pods.nodeNetns, "route", "add", "10.99.\(octet).0/24", "via", clientAddress])
        try balancer.apply(
            LoadBalancedService(
                id: 7,
                frontend: ServiceFrontend(address: IPAddress(nodeAddress)!, port: Self.nodePort, proto: IPProtocol.tcp),
                backends: [ServiceBackend(address: IPAddress(remote)!, port: 8080)], external: true))
        let metrics = try TypedMap<UInt32, na_metrics_value>(XCTUnwrap(object.map(named: "na_metrics")))
        let key = na_metrics_slot(UInt16(NA_DROP_LB_REMOTE_BACKEND.rawValue), UInt8(NA_DIR_INGRESS.rawValue))
        let answer = try client(["refuse", nodeAddress, String(Self.nodePort)])
        XCTAssertNotEqual(answer["tcp"] as? String, "connected", "\(answer)")
        let dropped = try metrics.lookupPerCPU(key)?.reduce(0) { $0 + $1.packets } ?? 0
        XCTAssertGreaterThan(dropped, 0, "the SYNs were dropped as to a backend on another node")
    }

    /// Ingress policy on the backends judges the client outside as world: allowing world lets it in, allowing only
    /// another identity drops it, and the drop names the client's address and identity.
    func testBackendIngressPolicySeesTheClientOutsideAsWorld() throws {
        try balancer.apply(service(id: 6, frontend: nodeAddress, port: Self.nodePort))
        try enforceIngress(allowing: NA_ID_WORLD.rawValue)
        try checkTCP(nodeAddress, Self.nodePort)

        try enforceIngress(allowing: NA_ID_HOST.rawValue)
        let events = try BPFRingBuffer(XCTUnwrap(object.map(named: "na_events")))
        _ = try events.drain()
        let answer = try client(["refuse", nodeAddress, String(Self.nodePort)])
        XCTAssertNotEqual(answer["tcp"] as? String, "connected", "\(answer)")
        let drops = try events.drain().compactMap { record -> na_flow_event? in
            guard record.count >= MemoryLayout<na_flow_event>.size else { return nil }
            return record.withUnsafeBytes { $0.loadUnaligned(as: na_flow_event.self) }
        }.filter { $0.reason == UInt16(NA_DROP_POLICY.rawValue) }
        let drop = try XCTUnwrap(drops.first, "a policy drop event")
        var source = drop.saddr
        XCTAssertEqual(withUnsafeBytes(of: &source) { Array($0.prefix(4)) }, IPAddress(clientAddress)!.bytes)
        XCTAssertEqual(drop.src_identity, NA_ID_WORLD.rawValue, "the drop names the client as world")
        XCTAssertEqual(drop.direction, UInt8(NA_DIR_INGRESS.rawValue))
    }

    /// Ingress enforcement on both backends with one rule: `identity` may reach any port.
    private func enforceIngress(allowing identity: UInt32) throws {
        let policy = try XCTUnwrap(object.map(named: "na_policy"))
        let endpoints = try TypedMap<UInt32, na_endpoint_info>(XCTUnwrap(object.map(named: "na_endpoints")))
        for ifindex in backendIfindexes {
            guard var info = try endpoints.lookup(ifindex) else { throw ScratchError("no endpoint at \(ifindex)") }
            let inner = try BPFMap.create(
                type: .lpmTrie, name: "na_pol_\(info.ep_id)", keySize: MemoryLayout<na_policy_key>.size,
                valueSize: MemoryLayout<na_policy_value>.size, maxEntries: 16, flags: UInt32(BPF_F_NO_PREALLOC))
            var key = na_policy_key()
            key.prefixlen = UInt32(NA_POLICY_PREFIX_FULL)
            key.identity = identity.bigEndian
            key.direction = UInt8(NA_DIR_INGRESS.rawValue)
            try TypedMap<na_policy_key, na_policy_value>(inner).update(key, na_policy_value(rule_id: 1, flags: 0))
            try TypedMap<UInt32, UInt32>(policy).update(info.ep_id, UInt32(bitPattern: inner.fd))
            info.flags |= UInt32(NA_EP_ENFORCE_INGRESS)
            info.policy_revision += 1
            try endpoints.update(ifindex, info)
        }
    }
}
