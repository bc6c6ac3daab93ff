import Foundation
import Glibc
import XCTest

/// The topology builder and traffic helpers on their own, without an agent: plain forwarding through the node
/// namespace must work before any test can blame the agent for a drop.
final class TopologyTests: EndToEndTestCase {
    func testPodsExchangeTCPAndUDPOverIPv4ThroughTheNode() throws {
        let topology = try makeTopology()
        let client = try topology.addPod(namespace: "web-tier", name: "client")
        let server = try topology.addPod(namespace: "api-tier", name: "server")
        let tcp = try TCPServer(on: server, port: 8080, in: topology)
        let udp = try UDPServer(on: server, port: 5353, in: topology)

        let connection = try tcpConnect(from: client, to: server, port: 8080)
        XCTAssertTrue(connection.passed, "client → server TCP: \(connection)")
        XCTAssertEqual(connection.localAddress, client.ipv4)
        XCTAssertEqual(tcp.peers, [client.ipv4], "the server sees the pod's own address: no NAT on the way")

        let datagram = try udpExchange(from: client, to: server, port: 5353)
        XCTAssertTrue(datagram.passed, "client → server UDP: \(datagram)")
        XCTAssertEqual(udp.peers, [client.ipv4])

        let reverseServer = try TCPServer(on: client, port: 9090, in: topology)
        let reverse = try tcpConnect(from: server, to: client, port: 9090)
        XCTAssertTrue(reverse.passed, "server → client TCP: \(reverse)")
        XCTAssertEqual(reverseServer.peers, [server.ipv4])
    }

    func testPodsExchangeTCPAndUDPOverIPv6ThroughTheNode() throws {
        let topology = try makeTopology()
        let client = try topology.addPod(namespace: "web-tier", name: "client")
        let server = try topology.addPod(namespace: "api-tier", name: "server")
        let tcp = try TCPServer(on: server, port: 8080, in: topology)
        let udp = try UDPServer(on: server, port: 5353, in: topology)

        let connection = try tcpConnect(from: client, to: server, port: 8080, ipv6: true)
        XCTAssertTrue(connection.passed, "client → server TCP over IPv6: \(connection)")
        XCTAssertEqual(tcp.peers, [try XCTUnwrap(client.ipv6)])

        let datagram = try udpExchange(from: client, to: server, port: 5353, ipv6: true)
        XCTAssertTrue(datagram.passed, "client → server UDP over IPv6: \(datagram)")
        XCTAssertEqual(udp.peers, [try XCTUnwrap(client.ipv6)])
    }

    func testPodsAreWiredTheWayCiliumWiresThem() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "data-tier", name: "postgres", ipv4: "10.244.7.9")

        XCTAssertLessThanOrEqual(pod.hostInterface.count, 15, "interface names are limited to 15 characters")
        XCTAssertTrue(pod.hostInterface.contains(topology.tag))
        let link = try Shell.run(["ip", "-n", topology.nodeNetns, "-o", "link", "show", "dev", pod.hostInterface])
        XCTAssertTrue(link.hasPrefix("\(pod.hostIfindex): \(pod.hostInterface)@"), link)

        let podAddresses = try Shell.run(["ip", "-n", pod.netns, "-o", "-4", "address", "show", "dev", "eth0"])
        XCTAssertTrue(podAddresses.contains("inet 10.244.7.9/32"), podAddresses)
        let podRoutes = try Shell.run(["ip", "-n", pod.netns, "-4", "route", "show"])
        XCTAssertTrue(podRoutes.contains("default via \(topology.gatewayIPv4) dev eth0"), podRoutes)
        XCTAssertTrue(podRoutes.contains("\(topology.gatewayIPv4) dev eth0 scope link"), podRoutes)
        let nodeRoutes = try Shell.run(["ip", "-n", topology.nodeNetns, "-4", "route", "show"])
        XCTAssertTrue(nodeRoutes.contains("10.244.7.9 dev \(pod.hostInterface)"), nodeRoutes)
        XCTAssertEqual(try Netns.sysctl("net.ipv4.ip_forward", in: topology.nodeNetns), "1")
    }

    func testClosedPortIsRefusedNotDropped() throws {
        let topology = try makeTopology()
        let client = try topology.addPod(namespace: "web-tier", name: "client")
        let server = try topology.addPod(namespace: "api-tier", name: "server")

        let started = Date()
        let connection = try tcpConnect(from: client, to: server, port: 8081)
        XCTAssertEqual(connection.outcome, .refused, "\(connection)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.5, "a refusal is immediate, unlike a drop")
        XCTAssertEqual(try tcpConnect(from: client, to: server, port: 8081, ipv6: true).outcome, .refused)
        XCTAssertEqual(try udpExchange(from: client, to: server, port: 5354).outcome, .refused)
    }

    /// A silently discarded SYN must read as "timed out", which is how the suites recognise a policy drop.
    func testSilentDropIsReportedAsTimeout() throws {
        let topology = try makeTopology()
        let client = try topology.addPod(namespace: "web-tier", name: "client")
        let server = try topology.addPod(namespace: "api-tier", name: "server")
        _ = try TCPServer(on: server, port: 8080, in: topology)
        try Shell.run(["ip", "-n", topology.nodeNetns, "route", "replace", "blackhole", "\(server.ipv4)/32"])

        let started = Date()
        let connection = try tcpConnect(from: client, to: server, port: 8080, timeout: 0.5)
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertTrue(connection.dropped, "\(connection)")
        XCTAssertFalse(connection.passed)
        XCTAssertGreaterThanOrEqual(elapsed, 0.5)
        XCTAssertLessThan(elapsed, 1.5, "the connect timeout bounds a dropped attempt")
    }

    func testExternalHostIsReachableBothWays() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "api-tier", name: "backend-api")
        let world = try topology.addExternalHost(ipv4: "198.51.100.10", ipv6: "2001:db8::10")
        XCTAssertLessThanOrEqual(world.hostInterface.count, 15)
        let worldServer = try TCPServer(on: world, port: 443, in: topology)
        let podServer = try TCPServer(on: pod, port: 8080, in: topology)

        let outbound = try tcpConnect(from: pod, to: world, port: 443)
        XCTAssertTrue(outbound.passed, "pod → world: \(outbound)")
        XCTAssertEqual(worldServer.peers, [pod.ipv4])
        XCTAssertTrue(try tcpConnect(from: pod, to: world, port: 443, ipv6: true).passed, "pod → world over IPv6")
        let inbound = try tcpConnect(from: world, to: pod, port: 8080)
        XCTAssertTrue(inbound.passed, "world → pod: \(inbound)")
        XCTAssertEqual(podServer.peers, [world.ipv4])
    }

    func testExternalHostWithoutRouteToPodsOnlyReachesTheNode() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "api-tier", name: "backend-api")
        let world = try topology.addExternalHost(ipv4: "198.51.100.20", routeToPods: false)
        _ = try TCPServer(on: world, port: 443, in: topology)

        let connection = try tcpConnect(from: pod, to: world, port: 443, timeout: 0.5)
        XCTAssertFalse(connection.passed, "replies to a pod address have no route back: \(connection)")
        let fromNode = try tcpConnect(from: topology.nodeNetns, to: world.ipv4, port: 443)
        XCTAssertTrue(fromNode.passed, "the node's own address is reachable: \(fromNode)")
    }

    func testDestroyRemovesEverythingAndClosesSockets() throws {
        try requireNetworkPrivileges()
        // A first run creates the descriptors Foundation and Dispatch keep for good (event loops, timers).
        let warmUp = try Topology()
        let warmUpPod = try warmUp.addPod(namespace: "warm-up", name: "pod")
        _ = try TCPServer(on: warmUpPod, port: 1, in: warmUp)
        _ = try tcpConnect(from: warmUpPod, to: warmUpPod, port: 1)
        XCTAssertEqual(warmUp.destroy(), [])
        let descriptorsBefore = openDescriptorCount()

        let topology = try Topology()
        let client = try topology.addPod(namespace: "web-tier", name: "client")
        let server = try topology.addPod(namespace: "api-tier", name: "server")
        let world = try topology.addExternalHost(ipv4: "198.51.100.30")
        _ = try TCPServer(on: server, port: 8080, in: topology)
        _ = try UDPServer(on: world, port: 53, in: topology)
        XCTAssertTrue(try tcpConnect(from: client, to: server, port: 8080).passed)
        XCTAssertEqual(
            Set(Netns.names(withPrefix: "na\(topology.tag)-")),
            Set([topology.nodeNetns, client.netns, server.netns, world.netns]))

        XCTAssertEqual(topology.destroy(), [])
        XCTAssertEqual(topology.leftovers(), [])
        XCTAssertEqual(openDescriptorCount(), descriptorsBefore, "every socket of the run is closed")

        XCTAssertEqual(topology.destroy(), [], "destroying twice is harmless")
    }

    /// A setup that fails halfway (an invalid address makes `ip` fail after the pod namespace exists) leaves
    /// a half-built pod; destroy() still removes all of it.
    func testSetupFailingHalfwayIsCleanedUp() throws {
        try requireNetworkPrivileges()
        let topology = try Topology()
        try topology.addPod(namespace: "web-tier", name: "good")
        XCTAssertThrowsError(try topology.addPod(namespace: "web-tier", name: "bad", ipv4: "10.244.1.300")) { error in
            XCTAssertTrue("\(error)".contains("10.244.1.300"), "the error shows ip's complaint: \(error)")
        }
        XCTAssertEqual(topology.pods.map(\.name), ["good"])
        XCTAssertEqual(Netns.names(withPrefix: "na\(topology.tag)-").count, 3, "node, good and the half-built pod")

        XCTAssertEqual(topology.destroy(), [])
        XCTAssertEqual(topology.leftovers(), [])
    }

    /// What a crashed run leaves (namespaces, a process inside them, directories, its marker) is swept by the
    /// next run once the owning process is gone.
    func testAbandonedRunIsSweptByTheNextRun() throws {
        try requireNetworkPrivileges()
        let tag = try Topology.freshTag()
        let nodeNetns = "na\(tag)-node"
        try Netns.create(nodeNetns)
        let directory = "\(Topology.temporaryDirectory)/na\(tag)-agent1"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: try Shell.executablePath("nsenter"))
        sleeper.arguments = ["--net=\(Netns.path(nodeNetns))", try Shell.executablePath("sleep"), "60"]
        try sleeper.run()
        let deadOwner = try deadProcessID()
        try FileManager.default.createDirectory(atPath: RunMarker.directory, withIntermediateDirectories: true)
        try "\(deadOwner)\n".write(toFile: "\(RunMarker.directory)/\(tag)", atomically: true, encoding: .utf8)
        defer {
            if sleeper.isRunning { sleeper.terminate() }
            Topology.sweep(tag: tag)
        }
        // nsenter joins the namespace just after it starts.
        let deadline = Date() + 5
        while Topology.processes(inNamespaces: [nodeNetns]).isEmpty && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(Topology.processes(inNamespaces: [nodeNetns]), [sleeper.processIdentifier])
        XCTAssertFalse(Topology.leftovers(tag: tag).isEmpty)

        Topology.sweepAbandoned()

        XCTAssertEqual(Topology.leftovers(tag: tag), [])
        sleeper.waitUntilExit()
        XCTAssertEqual(sleeper.terminationReason, .uncaughtSignal, "the process left in the namespace was killed")
    }

    func testSweepLeavesLiveRunsAlone() throws {
        let topology = try makeTopology()
        Topology.sweepAbandoned()
        XCTAssertTrue(Netns.exists(topology.nodeNetns), "a run whose owner is alive is not swept")
    }

    // MARK: - Helpers

    private func openDescriptorCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    /// The id of a process that has exited (and been reaped), for a run marker whose owner is gone.
    private func deadProcessID() throws -> pid_t {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Shell.executablePath("true"))
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }
}
