import AgentAPI
import Foundation
import Glibc
import XCTest

/// ICMP errors and neighbor discovery with real traffic between two dual-stack pods: errors reach a pod only for
/// a flow it has, a pod cannot advertise itself as a router or advertise another pod's address, and ordinary IPv6
/// neighbour resolution keeps working.
final class ICMPTests: EndToEndTestCase {
    private struct Pair {
        var topology: Topology
        var agent: AgentProcess
        var client: Pod
        var server: Pod
    }

    /// Two pods without policy (conntrack still tracks their flows) and a UDP echo server on the server's 5353.
    private func makePair() throws -> Pair {
        let topology = try makeTopology()
        let client = try topology.addPod(namespace: "default", name: "client")
        let server = try topology.addPod(namespace: "default", name: "server")
        _ = try UDPServer(on: server, port: 5353, in: topology)
        _ = try TCPServer(on: server, port: 8080, in: topology)
        let agent = try startAgent(in: topology)
        _ = try agent.registerEndpoint(id: 1, pod: client, labels: ["k8s:app=client"])
        _ = try agent.registerEndpoint(id: 2, pod: server, labels: ["k8s:app=server"])
        return Pair(topology: topology, agent: agent, client: client, server: server)
    }

    func testPortUnreachableFromAClosedPortReachesTheSender() throws {
        let p = try makePair()
        for ipv6 in [false, true] {
            let result = try udpExchange(from: p.client, to: p.server, port: 9, ipv6: ipv6)
            XCTAssertEqual(result.outcome, .refused, "the server's port unreachable reaches the client (ipv6: \(ipv6))")
        }
    }

    func testCraftedIPv4ErrorPassesOnlyForALiveFlow() throws {
        try craftedErrors(ipv6: false)
    }

    func testCraftedIPv6ErrorPassesOnlyForALiveFlow() throws {
        try craftedErrors(ipv6: true)
    }

    /// The server sends port unreachables quoting a datagram from one of two connected client sockets: one that
    /// exchanged a datagram (a flow), one that never sent anything (no flow). The kernel reports an error that
    /// arrives to the socket it names, so the sockets' pending errors show which errors reached the client pod.
    private func craftedErrors(ipv6: Bool) throws {
        let p = try makePair()
        let serverIP = try p.server.address(ipv6: ipv6)
        let tracked = try ConnectedUDP(from: p.client, to: serverIP, port: 5353, in: p.topology)
        let untracked = try ConnectedUDP(from: p.client, to: serverIP, port: 5353, in: p.topology)
        XCTAssertTrue(tracked.exchange(), "the tracked socket's datagram is echoed")
        let before = try p.agent.droppedPackets(reason: 136, direction: "egress")

        try sendPortUnreachable(from: p.server, quoting: untracked, ipv6: ipv6)
        XCTAssertTrue(
            try waitUntil { try p.agent.droppedPackets(reason: 136, direction: "egress") > before },
            "the server's error about no flow is dropped as it leaves the server")
        usleep(300_000)
        XCTAssertEqual(untracked.pendingError(), 0, "nothing reached the socket the error names")
        let flows = try p.agent.waitForFlows("reason=136&last=100") { !$0.isEmpty }
        XCTAssertEqual(flows.first?["protocol"]?.stringValue, ipv6 ? "ICMPv6" : "ICMP", "\(flows)")
        XCTAssertEqual(flows.first?["direction"]?.stringValue, "egress")

        try sendPortUnreachable(from: p.server, quoting: tracked, ipv6: ipv6)
        XCTAssertTrue(
            waitUntil { tracked.pendingError() == ECONNREFUSED },
            "the error about the live flow reaches the client socket")
        XCTAssertEqual(try p.agent.droppedPackets(reason: 136, direction: "egress"), before + 1)
        XCTAssertEqual(try p.agent.droppedPackets(reason: 136, direction: "ingress"), 0)
    }

    func testPodRouterAdvertisementIsDroppedAndNeighbourResolutionWorks() throws {
        let p = try makePair()
        // Fresh namespaces have no neighbour entries: this connection needs NS/NA both ways over the veths, and
        // the server's advertisement (target: its global address) leaves through its from_endpoint program.
        XCTAssertTrue(try tcpConnect(from: p.client, to: p.server, port: 8080, ipv6: true).passed)
        let serverIPv6 = try p.server.address(ipv6: true)
        let neighbours = try Shell.run(
            ["ip", "-n", p.topology.nodeNetns, "-6", "neigh", "show", "dev", p.server.hostInterface])
        XCTAssertTrue(neighbours.contains(canonicalIP(serverIPv6)), "the node resolved the server pod: \(neighbours)")

        let advertisements = try p.agent.droppedPackets(reason: 138, direction: "egress")
        try sendICMPv6(from: p.client, to: "ff02::1", routerAdvertisement())
        XCTAssertTrue(
            try waitUntil { try p.agent.droppedPackets(reason: 138, direction: "egress") > advertisements },
            "the client's router advertisement is dropped")

        let foreign = try p.agent.droppedPackets(reason: 139, direction: "egress")
        try sendICMPv6(from: p.client, to: p.topology.gatewayIPv6, neighborAdvertisement(target: serverIPv6))
        XCTAssertTrue(
            try waitUntil { try p.agent.droppedPackets(reason: 139, direction: "egress") > foreign },
            "the client's advertisement of the server's address is dropped")

        XCTAssertTrue(
            try tcpConnect(from: p.client, to: p.server, port: 8080, ipv6: true).passed,
            "IPv6 between the pods still works")
    }

    // MARK: - Helpers

    private func waitUntil(timeout: TimeInterval = 3, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date() + timeout
        while Date() < deadline {
            if try condition() { return true }
            usleep(50_000)
        }
        return try condition()
    }

    /// Sends from `pod` a port unreachable about a datagram `socket` sent to its peer (as the peer's kernel
    /// would), with the datagram's IP header and UDP header quoted.
    private func sendPortUnreachable(from pod: Pod, quoting socket: ConnectedUDP, ipv6: Bool) throws {
        let quoted =
            ipv6
            ? ipv6UDPHeaders(from: socket.local, to: socket.remote)
            : ipv4UDPHeaders(from: socket.local, to: socket.remote)
        // type, code, checksum, 4 unused bytes; ICMPv6 port unreachable is type 1 code 4
        var message: [UInt8] = ipv6 ? [1, 4, 0, 0, 0, 0, 0, 0] : [3, 3, 0, 0, 0, 0, 0, 0]
        message += quoted
        let sender = socket.local.ip
        if ipv6 {
            try sendICMPv6(from: pod, to: sender, message)
        } else {
            let sum = checksum(message)
            message[2] = UInt8(sum >> 8)
            message[3] = UInt8(sum & 0xff)
            try sendRaw(from: pod, family: AF_INET, proto: Int32(IPPROTO_ICMP), to: sender, message)
        }
    }

    /// ICMPv6 from `pod` with hop limit 255 (what ND requires); the kernel fills in the checksum.
    private func sendICMPv6(from pod: Pod, to destination: String, _ message: [UInt8]) throws {
        try sendRaw(from: pod, family: AF_INET6, proto: Int32(IPPROTO_ICMPV6), to: destination, message)
    }

    private func sendRaw(from pod: Pod, family: Int32, proto: Int32, to destination: String, _ message: [UInt8])
        throws
    {
        let netns = pod.netns
        let eth0 = try Netns.interfaceIndex("eth0", in: netns)
        let address =
            family == AF_INET6
            ? try SocketAddress(ip: destination, port: 0, scope: UInt32(eth0))
            : try SocketAddress(ip: destination, port: 0)
        let fd = try Netns.perform(in: netns) { () -> Int32 in
            let fd = socket(family, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), proto)
            guard fd >= 0 else { throw NetnsError("raw socket in \(netns)") }
            return fd
        }
        defer { close(fd) }
        if family == AF_INET6 {
            try Sockets.setOption(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_HOPS, 255)
            try Sockets.setOption(fd, Int32(IPPROTO_IPV6), IPV6_UNICAST_HOPS, 255)
            try Sockets.setOption(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_IF, eth0)
        }
        let sent = address.withSockaddr { sockaddr, length in
            message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sockaddr, length) }
        }
        guard sent == message.count else { throw NetnsError("sendto \(destination) from \(netns)") }
    }

    /// A router advertisement: hop limit 64, lifetime 1800 s, no options.
    private func routerAdvertisement() -> [UInt8] {
        [134, 0, 0, 0, 64, 0, 0x07, 0x08] + [UInt8](repeating: 0, count: 8)
    }

    /// An unsolicited neighbor advertisement (override flag) for `target`.
    private func neighborAdvertisement(target: String) throws -> [UInt8] {
        var address = in6_addr()
        guard inet_pton(AF_INET6, target, &address) == 1 else { throw NetnsError("bad address \(target)") }
        return [136, 0, 0, 0, 0x20, 0, 0, 0] + withUnsafeBytes(of: address) { Array($0) }
    }

    /// The IPv4 and UDP headers of a datagram from `source` to `destination`, as an error quotes them.
    private func ipv4UDPHeaders(from source: SocketAddress, to destination: SocketAddress) -> [UInt8] {
        var header: [UInt8] = [0x45, 0, 0, 36, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0]
        header += source.addressBytes + destination.addressBytes
        let sum = checksum(header)
        header[10] = UInt8(sum >> 8)
        header[11] = UInt8(sum & 0xff)
        return header + udpHeader(source, destination)
    }

    private func ipv6UDPHeaders(from source: SocketAddress, to destination: SocketAddress) -> [UInt8] {
        [0x60, 0, 0, 0, 0, 16, 17, 64] + source.addressBytes + destination.addressBytes
            + udpHeader(source, destination)
    }

    private func udpHeader(_ source: SocketAddress, _ destination: SocketAddress) -> [UInt8] {
        [
            UInt8(source.port >> 8), UInt8(source.port & 0xff), UInt8(destination.port >> 8),
            UInt8(destination.port & 0xff),
            0, 16, 0, 0,
        ]
    }

    private func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }
}

/// A connected UDP socket in a pod: the kernel reports ICMP errors about its datagrams as its pending error.
private final class ConnectedUDP: @unchecked Sendable {  // used from the test thread only
    let fd: Int32
    let local: SocketAddress
    let remote: SocketAddress

    init(from pod: Pod, to ip: String, port: UInt16, in topology: Topology) throws {
        remote = try SocketAddress(ip: ip, port: port)
        fd = try Sockets.make(in: pod.netns, family: remote.family, type: SOCK_DGRAM)
        let fd = self.fd
        topology.onDestroy { close(fd) }
        guard remote.withSockaddr({ connect(fd, $0, $1) }) == 0, let local = Sockets.localAddress(fd) else {
            throw NetnsError("connect to \(remote) from \(pod.netns)")
        }
        self.local = local
    }

    /// Sends a datagram and waits for its echo.
    func exchange(timeout: TimeInterval = 1) -> Bool {
        let payload = uniquePayload()
        let sent = payload.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == payload.count, Sockets.wait(fd, for: Int16(POLLIN), until: Date() + timeout) != 0 else {
            return false
        }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n == payload.count && Array(buffer[0..<n]) == payload
    }

    /// The socket's pending error (SO_ERROR) without clearing anything else; 0 when none.
    func pendingError() -> Int32 { Sockets.pendingError(fd) }
}

extension SocketAddress {
    /// An IPv6 address with a scope (the interface a link-local or multicast address is on).
    fileprivate init(ip: String, port: UInt16, scope: UInt32) throws {
        try self.init(ip: ip, port: port)
        var address = withSockaddr { raw, _ in raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
        }
        address.sin6_scope_id = scope
        self.init(
            storage: withUnsafeBytes(of: address) { raw in
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) }
                return storage
            }, length: socklen_t(MemoryLayout<sockaddr_in6>.size))
    }

    /// The address in network byte order: 4 bytes for IPv4, 16 for IPv6.
    fileprivate var addressBytes: [UInt8] {
        withSockaddr { raw, _ in
            if family == AF_INET6 {
                return raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) }
                }
            }
            return raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                withUnsafeBytes(of: $0.pointee.sin_addr) { Array($0) }
            }
        }
    }
}
