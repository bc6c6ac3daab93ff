import AgentAPI
import Foundation
import Glibc
import XCTest

/// Masquerading with real traffic: a pod talks to a host outside the cluster that has no route to pods and can
/// only answer the node's own address, so every exchange that works went through the node's translation.
final class NATEndToEndTests: EndToEndTestCase {
    private struct Setup {
        var topology: Topology
        var agent: AgentProcess
        var pod: Pod
        var world: ExternalHost
    }

    private func makeSetup(nat extra: [String: JSON] = [:], plugins: [String: JSON] = [:]) throws -> Setup {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "default", name: "client", dualStack: false)
        let world = try topology.addExternalHost(ipv4: "198.51.100.20", routeToPods: false)
        var nat: [String: JSON] = ["interface": .string(world.hostInterface), "cluster-cidrs": ["10.244.0.0/16"]]
        nat.merge(extra) { _, new in new }
        let config = "\(Topology.temporaryDirectory)/na\(topology.tag)-nat.json"
        let all = plugins.merging(["nat": .object(nat)]) { _, new in new }
        try JSON.object(["plugins": .object(all)]).serialized().write(toFile: config, atomically: true, encoding: .utf8)
        topology.onDestroy { try? FileManager.default.removeItem(atPath: config) }
        let agent = try startAgent(in: topology, configFile: config)
        _ = try agent.registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=client"])
        return Setup(topology: topology, agent: agent, pod: pod, world: world)
    }

    /// Every mapping `GET /v1/nat` lists, following its pages.
    private func mappings(_ agent: AgentProcess) throws -> [JSON] {
        var all: [JSON] = []
        var cursor: String?
        repeat {
            let page = try agent.api(.GET, "/v1/nat?limit=1000" + (cursor.map { "&cursor=\($0)" } ?? ""))
            XCTAssertEqual(page.status, 200, page.body)
            all += page.json?["mappings"]?.arrayValue ?? []
            cursor = page.json?["next-cursor"]?.stringValue
        } while cursor != nil
        return all
    }

    private func natStatus(_ agent: AgentProcess) throws -> JSON? {
        let health = try agent.api(.GET, "/v1/healthz")
        return health.json?["plugins"]?.arrayValue?.first { $0["name"]?.stringValue == "nat" }
    }

    func testPodReachesTheWorldWithTheNodesAddress() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "default", name: "client", dualStack: false)
        let world = try topology.addExternalHost(ipv4: "198.51.100.20", routeToPods: false)
        let server = try TCPServer(on: world, port: 7000, in: topology)
        let direct = try tcpConnect(from: pod, to: world, port: 7000, timeout: 0.5)
        XCTAssertFalse(direct.passed, "without masquerading the world cannot answer a pod: \(direct)")

        let config = "\(Topology.temporaryDirectory)/na\(topology.tag)-nat.json"
        try #"{"plugins":{"nat":{"interface":"\#(world.hostInterface)","cluster-cidrs":["10.244.0.0/16"]}}}"#.write(
            toFile: config, atomically: true, encoding: .utf8)
        let agent = try startAgent(in: topology, configFile: config)
        _ = try agent.registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=client"])

        let result = try tcpConnect(from: pod, to: world, port: 7000)
        XCTAssertTrue(result.passed, "pod → world through NAT: \(result)")
        XCTAssertEqual(server.peers, [world.nodeIPv4], "the world sees the node's address")

        let status = try natStatus(agent)
        XCTAssertEqual(status?["state"]?.stringValue, "running", "\(String(describing: status))")
        XCTAssertEqual(status?["detail"]?["active"]?.boolValue, true)
        XCTAssertEqual(status?["detail"]?["address"]?.stringValue, world.nodeIPv4, "the interface's address")

        let listed = try mappings(agent).filter { $0["destination"]?["port"]?.intValue == 7000 }
        XCTAssertEqual(listed.count, 1, "\(listed)")
        XCTAssertEqual(listed.first?["original"]?["address"]?.stringValue, pod.ipv4)
        XCTAssertEqual(listed.first?["translated"]?["address"]?.stringValue, world.nodeIPv4)
        XCTAssertEqual(listed.first?["protocol"]?.stringValue, "TCP")
        XCTAssertEqual(listed.first?["tracked"]?.boolValue, true, "the endpoint's conntrack saw it first")
        XCTAssertEqual(listed.first?["complete"]?.boolValue, true)
    }

    func testUDPAndPingGoThroughNAT() throws {
        let s = try makeSetup()
        let server = try UDPServer(on: s.world, port: 5300, in: s.topology)
        let result = try udpExchange(from: s.pod, to: s.world, port: 5300)
        XCTAssertTrue(result.passed, "UDP pod → world: \(result)")
        XCTAssertEqual(server.peers, [s.world.nodeIPv4])

        XCTAssertTrue(try pingEcho(from: s.pod.netns, to: s.world.ipv4), "ICMP echo through NAT")
        let protocols = Set(try mappings(s.agent).compactMap { $0["protocol"]?.stringValue })
        XCTAssertEqual(protocols, ["UDP", "ICMP"])
    }

    func testConcurrentConnectionsGetDistinctPorts() throws {
        let s = try makeSetup()
        let server = try TCPServer(on: s.world, port: 7000, in: s.topology)
        let count = 500
        var fds: [Int32] = []
        defer {
            for fd in fds {
                Sockets.abortOnClose(fd)
                close(fd)
            }
        }
        let address = try SocketAddress(ip: s.world.ipv4, port: 7000)
        for _ in 0..<count {
            let fd = try Sockets.make(in: s.pod.netns, family: AF_INET, type: SOCK_STREAM)
            fds.append(fd)
            let rc = address.withSockaddr { connect(fd, $0, $1) }
            XCTAssertTrue(rc == 0 || errno == EINPROGRESS, "connect: \(String(cString: strerror(errno)))")
        }
        let deadline = Date() + 15
        var connected = 0
        for fd in fds where Sockets.wait(fd, for: Int16(POLLOUT), until: deadline) != 0 {
            if Sockets.pendingError(fd) == 0 { connected += 1 }
        }
        XCTAssertEqual(connected, count, "every connection completed its handshake through NAT")

        let listed = try mappings(s.agent).filter {
            $0["destination"]?["address"]?.stringValue == s.world.ipv4 && $0["destination"]?["port"]?.intValue == 7000
        }
        XCTAssertEqual(listed.count, count)
        let ports = Set(listed.compactMap { $0["translated"]?["port"]?.intValue })
        XCTAssertEqual(ports.count, count, "distinct translated ports")
        XCTAssertTrue(ports.allSatisfy { (32768...65535).contains($0) })
        XCTAssertEqual(Set(listed.compactMap { $0["translated"]?["address"]?.stringValue }), [s.world.nodeIPv4])

        let accepted = Date() + 10
        while server.peers.count < count && Date() < accepted { usleep(50_000) }
        XCTAssertEqual(server.peers.count, count)
        XCTAssertEqual(Set(server.peers), [s.world.nodeIPv4])
    }

    func testGCRemovesBothHalvesOfExpiredMappings() throws {
        // Lifetimes come from na_config, which the conntrack GC's options set: short ones here.
        let s = try makeSetup(
            nat: ["gc-interval": 1],
            plugins: ["conntrack-gc": ["tcp-established": 4, "tcp-syn": 4, "tcp-closing": 2, "non-tcp": 2]])
        _ = try UDPServer(on: s.world, port: 5300, in: s.topology)
        _ = try TCPServer(on: s.world, port: 7000, in: s.topology)

        XCTAssertTrue(try udpExchange(from: s.pod, to: s.world, port: 5300).passed)
        XCTAssertTrue(try tcpConnect(from: s.pod, to: s.world, port: 7000).passed)
        let before = try mappings(s.agent)
        XCTAssertEqual(before.count, 2, "\(before)")
        XCTAssertTrue(before.allSatisfy { ($0["expires-in-seconds"]?.intValue ?? 99) <= 4 }, "\(before)")

        let deadline = Date() + 15
        var entries = -1
        while Date() < deadline {
            entries = try s.agent.api(.GET, "/v1/map/na_nat").json?["entries"]?.arrayValue?.count ?? -1
            if entries == 0 { break }
            usleep(200_000)
        }
        XCTAssertEqual(entries, 0, "na_nat empty: both halves of both mappings deleted")
        let gc = try natStatus(s.agent)?["detail"]?["gc"]
        let deleted = try XCTUnwrap(gc?["deleted-entries"]?.intValue, "\(String(describing: gc))")
        XCTAssertEqual(deleted, 4, "two mappings, two halves each: \(String(describing: gc))")
    }

    func testTranslationContinuesWhileTheAgentRestarts() throws {
        let s = try makeSetup()
        _ = try TCPServer(on: s.world, port: 7000, in: s.topology)
        let connection = try EchoConnection(from: s.pod.netns, to: s.world.ipv4, port: 7000)
        defer { connection.close() }
        XCTAssertTrue(connection.exchange("before"), "echo through NAT")
        let port = try mappings(s.agent).first?["translated"]?["port"]?.intValue

        s.agent.stop()
        XCTAssertTrue(connection.exchange("while stopped"), "the programs stay attached while the agent is down")
        try s.agent.start()
        XCTAssertTrue(connection.exchange("after"), "and after it is back")
        let after = try mappings(s.agent)
        XCTAssertEqual(after.count, 1)
        XCTAssertEqual(after.first?["translated"]?["port"]?.intValue, port, "the same mapping, from the pinned map")
    }

    func testNodectlListsAndFlushesMappings() throws {
        let s = try makeSetup(nat: ["max-entries": 4096])
        let maps = try s.agent.api(.GET, "/v1/map").json?["maps"]?.arrayValue ?? []
        let nat = maps.first { $0["name"]?.stringValue == "na_nat" }
        XCTAssertEqual(nat?["max-entries"]?.intValue, 4096, "plugins.nat.max-entries sizes na_nat")
        XCTAssertEqual(nat?["owner"]?.stringValue, "nat")
        _ = try UDPServer(on: s.world, port: 5300, in: s.topology)
        XCTAssertTrue(try udpExchange(from: s.pod, to: s.world, port: 5300).passed)

        let table = try s.agent.nodectl("nat", "list")
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("\(s.pod.ipv4):"), table.stdout)
        XCTAssertTrue(table.stdout.contains("\(s.world.ipv4):5300"), table.stdout)
        let json = try s.agent.nodectl("-o", "json", "nat", "list")
        XCTAssertEqual(json.status, 0, json.stderr)
        XCTAssertEqual(try JSON.parse(json.stdout)["mappings"]?.arrayValue?.count, 1, json.stdout)

        let flush = try s.agent.nodectl("nat", "flush")
        XCTAssertEqual(flush.status, 0, flush.stderr)
        XCTAssertEqual(try mappings(s.agent).count, 0)
        XCTAssertEqual(try s.agent.api(.GET, "/v1/map/na_nat").json?["entries"]?.arrayValue?.count, 0)
    }

    func testWithoutAnInterfaceNATIsIdleAndSaysSo() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        let status = try natStatus(agent)
        XCTAssertEqual(status?["state"]?.stringValue, "running")
        XCTAssertEqual(status?["detail"]?["active"]?.boolValue, false)
        XCTAssertNotNil(status?["detail"]?["reason"]?.stringValue)
    }
}

/// Sends one ICMP echo request from namespace `netns` on an unprivileged ICMP socket (the kernel picks the id) and
/// says whether the reply came back within `timeout`.
private func pingEcho(from netns: String, to ip: String, timeout: TimeInterval = 2) throws -> Bool {
    // ICMP datagram sockets are open to the groups in this range only; the default range is empty.
    try Netns.setSysctl("net.ipv4.ping_group_range", "0 2147483647", in: netns)
    let fd = try Netns.perform(in: netns) { () throws -> Int32 in
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), Int32(IPPROTO_ICMP))
        guard fd >= 0 else { throw NetnsError("ICMP socket in \(netns)") }
        return fd
    }
    defer { close(fd) }
    let address = try SocketAddress(ip: ip, port: 0)
    let request: [UInt8] = [8, 0, 0, 0, 0, 0, 0, 1] + Array("nat ping".utf8)
    let sent = address.withSockaddr { sockaddr, length in
        request.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sockaddr, length) }
    }
    guard sent == request.count, Sockets.wait(fd, for: Int16(POLLIN), until: Date() + timeout) != 0 else {
        return false
    }
    var buffer = [UInt8](repeating: 0, count: 256)
    let n = recv(fd, &buffer, buffer.count, 0)
    return n == request.count && buffer[0] == 0 && Array(buffer[8..<n]) == Array(request[8...])
}

/// One TCP connection kept open, exchanging a line at a time with an echo server.
private final class EchoConnection {
    let fd: Int32

    init(from netns: String, to ip: String, port: UInt16) throws {
        let address = try SocketAddress(ip: ip, port: port)
        fd = try Sockets.make(in: netns, family: address.family, type: SOCK_STREAM)
        if address.withSockaddr({ connect(fd, $0, $1) }) != 0 && errno != EINPROGRESS {
            throw AgentHarnessError("connect to \(ip):\(port): \(String(cString: strerror(errno)))")
        }
        guard Sockets.wait(fd, for: Int16(POLLOUT), until: Date() + 3) != 0, Sockets.pendingError(fd) == 0 else {
            Glibc.close(fd)
            throw AgentHarnessError("connect to \(ip):\(port) did not complete")
        }
    }

    /// Sends `text` and says whether the same bytes came back within `timeout`.
    func exchange(_ text: String, timeout: TimeInterval = 3) -> Bool {
        let payload = Array(text.utf8)
        guard payload.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == payload.count
        else { return false }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        let deadline = Date() + timeout
        while received.count < payload.count, Sockets.wait(fd, for: Int16(POLLIN), until: deadline) != 0 {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 && errno != EAGAIN { return false }
            if n > 0 { received += buffer[0..<n] }
        }
        return received == payload
    }

    func close() {
        Sockets.abortOnClose(fd)
        Glibc.close(fd)
    }
}
