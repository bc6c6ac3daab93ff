import AgentAPI
import DatapathCore
import Foundation
import Glibc
import XCTest

@testable import Agent

/// Service translation in the endpoint programs with real traffic: the client pod's host-side veth carries
/// from_endpoint and to_endpoint, no socket hook is attached anywhere and the client runs outside any cgroup of
/// the test, so only the tc programs can take its connections to a backend and bring the replies back from the
/// frontend. A TCP handshake completes only if the SYN-ACK comes from the address the client connected to.
final class ServiceTCTranslationTests: XCTestCase {
    private var pods: ServicePods!
    private var object: BPFObject!
    private var balancer: SocketLoadBalancer!

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("namespaces and BPF programs need root") }
        pods = try ServicePods(backends: 2)
        object = try BPFObject.load(
            embedded: "endpoint", pinDirectory: nil,
            maxEntries: ["na_ct": 4096, "na_lb_flows": 4096, "na_ipcache": 64, "na_endpoints": 8, "na_policy": 8])
        let host = "sl\(pods.tag)h0"
        let ifindex = try ScratchNetns.run(in: pods.nodeNetns) { if_nametoindex(host) }
        XCTAssertNotEqual(ifindex, 0, "the client's host-side veth")
        var endpoint = na_endpoint_info()
        endpoint.ep_id = 1
        endpoint.identity = 256
        endpoint.flags = UInt32(NA_EP_HAS_IPV4) | UInt32(NA_EP_HAS_IPV6)
        setTupleBytes(&endpoint.ipv4, IPAddress(pods.ipv4(0))!.bytes)
        setTupleBytes(&endpoint.ipv6, IPAddress(pods.ipv6(0))!.bytes)
        let endpoints = try TypedMap<UInt32, na_endpoint_info>(XCTUnwrap(object.map(named: "na_endpoints")))
        try endpoints.update(ifindex, endpoint)
        balancer = try SocketLoadBalancer(object: object)
        let programs = try (
            XCTUnwrap(object.program(named: "from_endpoint")), XCTUnwrap(object.program(named: "to_endpoint"))
        )
        try ScratchNetns.run(in: pods.nodeNetns) {
            try TC.attach(programs.0, ifindex: Int32(ifindex), point: .ingress, links: nil)
            try TC.attach(programs.1, ifindex: Int32(ifindex), point: .egress, links: nil)
        }
    }

    override func tearDown() {
        // Deleting the namespaces takes the veths and their tc programs along.
        pods?.destroy()
    }

    /// A frontend no interface has, unique to the run.
    private var frontend4: String { "10.96.\(Int(pods.tag.suffix(2), radix: 16)!).10" }
    /// In RFC 5952 text, as the client prints the sources of its answers.
    private var frontend6: String { IPAddress("fd00:96::\(pods.tag)")!.description }

    private func service(id: UInt32, frontend: String, proto: UInt8, ipv6: Bool = false, port: UInt16? = nil)
        -> LoadBalancedService
    {
        let port = port ?? (proto == IPProtocol.tcp ? ServicePods.tcpPort : ServicePods.udpPort)
        return LoadBalancedService(
            id: id, frontend: ServiceFrontend(address: IPAddress(frontend)!, port: port, proto: proto),
            backends: [1, 2].map {
                ServiceBackend(address: IPAddress(ipv6 ? pods.ipv6($0) : pods.ipv4($0))!, port: port)
            })
    }

    /// The pods' client script in the client pod's namespace (or `netns`) only: no cgroup is joined.
    private func client(_ arguments: [String], netns: String? = nil) throws -> [String: Any] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        process.arguments =
            [
                "--net=/var/run/netns/\(netns ?? pods.clientNetns)", "--", "/usr/bin/python3",
                pods.scripts.appendingPathComponent("client.py").path,
            ]
            + arguments
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

    private func checkTCP(_ frontend: String) throws {
        let answer = try client(["tcp", frontend, String(ServicePods.tcpPort), "20"])
        XCTAssertEqual(answer["errors"] as? [String: Int], [:], "connections to \(frontend)")
        let names = answer["names"] as? [String: Int] ?? [:]
        XCTAssertEqual(names.values.reduce(0, +), 20, "\(names)")
        XCTAssertEqual(Set(names.keys), ["b1", "b2"], "20 connections reach both backends: \(names)")
    }

    private func checkUDP(_ frontend: String) throws {
        let answer = try client(["udp", frontend, String(ServicePods.udpPort), "5"])
        let names = answer["names"] as? [String: Int] ?? [:]
        XCTAssertEqual(names.values.reduce(0, +), 5, "answers from a backend: \(names)")
        XCTAssertTrue(Set(names.keys).isSubset(of: ["b1", "b2"]), "\(names)")
        let source = "\(frontend):\(ServicePods.udpPort)"
        XCTAssertEqual(answer["sources"] as? [String: Int], [source: 5], "answers come from the frontend")
        let connected = answer["connected"] as? [String: String] ?? [:]
        XCTAssertNotNil(connected["name"], "a connected socket gets its answer too")
    }

    func testTCPAndUDPToAFrontendReachABackendAndAnswersComeFromTheFrontend() throws {
        try balancer.apply(service(id: 1, frontend: frontend4, proto: IPProtocol.tcp))
        try balancer.apply(service(id: 2, frontend: frontend4, proto: IPProtocol.udp))
        try checkTCP(frontend4)
        try checkUDP(frontend4)
    }

    func testIPv6TCPAndUDPToAFrontendReachABackendAndAnswersComeFromTheFrontend() throws {
        try balancer.apply(service(id: 3, frontend: frontend6, proto: IPProtocol.tcp, ipv6: true))
        try balancer.apply(service(id: 4, frontend: frontend6, proto: IPProtocol.udp, ipv6: true))
        try checkTCP(frontend6)
        try checkUDP(frontend6)
    }

    /// ClientIP affinity where packets are translated: keyed by the client pod's address, so its 20 connections (20
    /// source ports) all reach the backend its first one reached.
    func testClientIPAffinityKeepsTheClientOnOneBackend() throws {
        var sticky = service(id: 9, frontend: frontend4, proto: IPProtocol.tcp)
        sticky.affinityTimeout = 60
        try balancer.apply(sticky)
        let answer = try client(["tcp", frontend4, String(ServicePods.tcpPort), "20"])
        XCTAssertEqual(answer["errors"] as? [String: Int], [:], "\(answer)")
        let names = answer["names"] as? [String: Int] ?? [:]
        XCTAssertEqual(names.count, 1, "every connection reached the same backend: \(names)")
        XCTAssertEqual(names.values.reduce(0, +), 20)
    }

    /// Hairpin: the first backend reaches a service backed only by itself, from outside any cgroup, through its own
    /// host-side veth's programs; its connections complete and see the frontend as their peer.
    func testABackendReachesAServiceBackedOnlyByItself() throws {
        let host = "sl\(pods.tag)h1"
        let ifindex = try ScratchNetns.run(in: pods.nodeNetns) { if_nametoindex(host) }
        var endpoint = na_endpoint_info()
        endpoint.ep_id = 2
        endpoint.identity = 257
        endpoint.flags = UInt32(NA_EP_HAS_IPV4) | UInt32(NA_EP_HAS_IPV6)
        setTupleBytes(&endpoint.ipv4, IPAddress(pods.ipv4(1))!.bytes)
        setTupleBytes(&endpoint.ipv6, IPAddress(pods.ipv6(1))!.bytes)
        try TypedMap<UInt32, na_endpoint_info>(XCTUnwrap(object.map(named: "na_endpoints"))).update(ifindex, endpoint)
        let programs = try (
            XCTUnwrap(object.program(named: "from_endpoint")), XCTUnwrap(object.program(named: "to_endpoint"))
        )
        try ScratchNetns.run(in: pods.nodeNetns) {
            try TC.attach(programs.0, ifindex: Int32(ifindex), point: .ingress, links: nil)
            try TC.attach(programs.1, ifindex: Int32(ifindex), point: .egress, links: nil)
        }
        var itself = service(id: 10, frontend: frontend4, proto: IPProtocol.tcp)
        itself.backends = [ServiceBackend(address: IPAddress(pods.ipv4(1))!, port: ServicePods.tcpPort)]
        try balancer.apply(itself)
        let answer = try client(["tcp", frontend4, String(ServicePods.tcpPort), "5"], netns: pods.backendNetns(1))
        XCTAssertEqual(answer["errors"] as? [String: Int], [:], "\(answer)")
        XCTAssertEqual(answer["names"] as? [String: Int], ["b1": 5], "\(answer)")
        XCTAssertEqual(answer["peers"] as? [String: Int], ["\(frontend4):\(ServicePods.tcpPort)": 5], "\(answer)")
    }

    /// The number of packets from_endpoint counted as sent to a service without backends.
    private func noServiceDrops() throws -> UInt64 {
        let metrics = try TypedMap<UInt32, na_metrics_value>(XCTUnwrap(object.map(named: "na_metrics")))
        let key = na_metrics_slot(UInt16(NA_DROP_NO_SERVICE.rawValue), UInt8(NA_DIR_EGRESS.rawValue))
        return try metrics.lookupPerCPU(key)?.reduce(0) { $0 + $1.packets } ?? 0
    }

    /// A connect() to a frontend without backends fails with ECONNREFUSED (a RST from the frontend), and a
    /// connected UDP socket's request ends in ECONNREFUSED (a port unreachable quoting it), both long before any
    /// retry or timeout, as the socket hooks refuse them; every refused packet is counted with its reason. The
    /// TCP and the UDP service share the port the client tries.
    private func checkRefused(_ frontend: String, ids: (UInt32, UInt32)) throws {
        for (id, proto) in [(ids.0, IPProtocol.tcp), (ids.1, IPProtocol.udp)] {
            var empty = service(id: id, frontend: frontend, proto: proto, port: ServicePods.tcpPort)
            empty.backends = []
            try balancer.apply(empty)
        }
        let before = try noServiceDrops()
        let answer = try client(["refuse", frontend, String(ServicePods.tcpPort)])
        XCTAssertEqual(answer["tcp"] as? String, "ECONNREFUSED", "\(frontend): \(answer)")
        XCTAssertLessThan(answer["tcp_ms"] as? Double ?? .infinity, 500, "refused at once: \(answer)")
        XCTAssertEqual(answer["udp_connected"] as? String, "ECONNREFUSED", "\(frontend): \(answer)")
        XCTAssertLessThan(answer["udp_connected_ms"] as? Double ?? .infinity, 500, "refused at once: \(answer)")
        // The SYN, the unconnected socket's datagram and the connected socket's one.
        let refused = try noServiceDrops() - before
        XCTAssertEqual(refused, 3, "the refused packets are counted as to a service without backends")
    }

    func testConnectionsToAFrontendWithoutBackendsAreRefusedAtOnceAndCounted() throws {
        try checkRefused(frontend4, ids: (5, 6))
    }

    func testIPv6ConnectionsToAFrontendWithoutBackendsAreRefusedAtOnce() throws {
        try checkRefused(frontend6, ids: (7, 8))
    }
}
