import AgentAPI
import DatapathCore
import Foundation
import Glibc
import XCTest

@testable import Agent

/// The socket load balancer with real traffic: a client pod in a cgroup of the test's own (the hooks attach
/// there, never to the machine's root cgroup) connects to frontends no interface has, and backend pods answer
/// with their names.
///
/// BPF_PROG_TEST_RUN does not run cgroup sock_addr programs on the kernels we support (the program type has no
/// test_run operation), so these hooks are tested here, through real sockets, rather than with fixtures.
final class SocketLoadBalancerTests: SocketLoadBalancerTestCase {
    override var podCounts: (backends: Int, clients: Int) { (3, 2) }

    private func address(_ text: String) -> IPAddress { IPAddress(text)! }

    /// A frontend no interface has, unique to the run.
    private func clusterIP(_ last: Int = 10) -> String { "10.96.\(Int(pods.tag.suffix(2), radix: 16)!).\(last)" }

    private func service(
        id: UInt32 = 7, frontend: String, port: UInt16 = ServicePods.tcpPort, proto: UInt8 = IPProtocol.tcp,
        backends: [Int], states: [Int: ServiceBackendState] = [:], weights: [Int: UInt16] = [:], ipv6: Bool = false,
        affinity: UInt32? = nil
    ) -> LoadBalancedService {
        LoadBalancedService(
            id: id, frontend: ServiceFrontend(address: address(frontend), port: port, proto: proto),
            backends: backends.map {
                ServiceBackend(
                    address: address(ipv6 ? pods.ipv6($0) : pods.ipv4($0)),
                    port: proto == IPProtocol.tcp ? ServicePods.tcpPort : ServicePods.udpPort,
                    weight: weights[$0] ?? 1, state: states[$0] ?? .active)
            }, affinityTimeout: affinity)
    }

    private func tcp(_ frontend: String, _ count: Int, netns: String? = nil) throws -> (
        names: [String: Int], peers: [String: Int]
    ) {
        let answer = try pods.client(["tcp", frontend, String(ServicePods.tcpPort), String(count)], netns: netns)
        let errors = answer["errors"] as? [String: Int] ?? [:]
        XCTAssertEqual(errors, [:], "connections to \(frontend) failed")
        return (answer["names"] as? [String: Int] ?? [:], answer["peers"] as? [String: Int] ?? [:])
    }

    func testTCPConnectionsSpreadOverEveryBackendAndGetpeernameShowsTheService() throws {
        let frontend = clusterIP()
        try datapath.apply(service(frontend: frontend, backends: [1, 2, 3]))
        let (names, peers) = try tcp(frontend, 300)
        XCTAssertEqual(names.values.reduce(0, +), 300)
        for backend in ["b1", "b2", "b3"] {
            XCTAssertGreaterThanOrEqual(
                names[backend] ?? 0, 60, "\(backend) got \(names[backend] ?? 0) of 300: \(names)")
        }
        XCTAssertEqual(peers, ["\(frontend):\(ServicePods.tcpPort)": 300])
    }

    func testIPv6ConnectionsReachTheBackendsAndGetpeernameShowsTheService() throws {
        let frontend = "fd00:96::\(pods.tag)"
        try datapath.apply(service(frontend: frontend, backends: [1, 2, 3], ipv6: true))
        let (names, peers) = try tcp(frontend, 90)
        XCTAssertEqual(Set(names.keys), ["b1", "b2", "b3"], "\(names)")
        XCTAssertEqual(peers.count, 1)
        XCTAssertEqual(peers.keys.first?.hasSuffix(":\(ServicePods.tcpPort)"), true)
        XCTAssertEqual(
            peers.keys.first.flatMap { IPAddress(String($0.dropLast(":\(ServicePods.tcpPort)".count))) },
            address(frontend))
    }

    func testUDPRepliesComeFromTheServiceAddress() throws {
        let frontend = clusterIP(53)
        try datapath.apply(service(frontend: frontend, port: 53, proto: IPProtocol.udp, backends: [1, 2, 3]))
        let answer = try pods.client(["udp", frontend, "53", "60"])
        let names = answer["names"] as? [String: Int] ?? [:]
        XCTAssertEqual(names.values.reduce(0, +), 60)
        XCTAssertGreaterThanOrEqual(names.count, 2, "60 datagrams all went to one backend: \(names)")
        XCTAssertEqual(answer["sources"] as? [String: Int], ["\(frontend):53": 60])
        let connected = answer["connected"] as? [String: String] ?? [:]
        XCTAssertEqual(connected["peer"], "\(frontend):53")
        XCTAssertTrue(["b1", "b2", "b3"].contains(connected["name"] ?? ""), "\(connected)")
    }

    func testAServiceWithoutBackendsRefusesAtOnce() throws {
        let frontend = clusterIP(11)
        try datapath.apply(service(frontend: frontend, backends: []))
        try datapath.apply(service(id: 8, frontend: frontend, port: 53, proto: IPProtocol.udp, backends: []))
        let answer = try pods.client(["refuse", frontend, String(ServicePods.tcpPort)])
        XCTAssertEqual(answer["tcp"] as? String, "ECONNREFUSED")
        XCTAssertLessThan(answer["tcp_ms"] as? Double ?? .infinity, 100)
        let udp = try pods.client(["refuse", frontend, "53"])
        XCTAssertEqual(udp["udp"] as? String, "ECONNREFUSED")
        // A connected socket fails at connect(): the same error the tc path's port unreachable gives it.
        XCTAssertEqual(udp["udp_connected"] as? String, "ECONNREFUSED")
        // Backends that only keep their connections do not count.
        try datapath.apply(service(frontend: frontend, backends: [1], states: [1: .terminating]))
        let terminating = try pods.client(["refuse", frontend, String(ServicePods.tcpPort)])
        XCTAssertEqual(terminating["tcp"] as? String, "ECONNREFUSED")
    }

    func testTerminatingAndRemovedBackendsTakeNoNewConnectionsWhileEstablishedOnesGoOn() throws {
        let frontend = clusterIP(12)
        try datapath.apply(service(frontend: frontend, backends: [1, 2, 3]))
        let held = try HeldConnection(pods.clientProcess(["hold", frontend, String(ServicePods.tcpPort)]))
        defer { held.close() }
        let index = Int(held.backend.dropFirst())!
        XCTAssertEqual(try held.exchange("before"), "\(held.backend):before")

        try datapath.apply(service(frontend: frontend, backends: [1, 2, 3], states: [index: .terminating]))
        let (names, _) = try tcp(frontend, 60)
        XCTAssertNil(names[held.backend], "the terminating backend got new connections: \(names)")
        XCTAssertEqual(names.values.reduce(0, +), 60)
        XCTAssertEqual(try held.exchange("terminating"), "\(held.backend):terminating")

        let others = [1, 2, 3].filter { $0 != index }
        try datapath.apply(service(frontend: frontend, backends: others))
        let (after, _) = try tcp(frontend, 60)
        XCTAssertEqual(Set(after.keys), Set(others.map { "b\($0)" }))
        XCTAssertEqual(try held.exchange("removed"), "\(held.backend):removed")
    }

    func testBackendSetsSwappedUnderLoadNeverFailAConnection() throws {
        let frontend = clusterIP(14)
        let sets = [[1, 2], [2, 3], [3], [1, 2, 3]]
        try datapath.apply(service(frontend: frontend, backends: sets[0]))
        let client = pods.clientProcess(["tcp", frontend, String(ServicePods.tcpPort), "400"])
        let output = Pipe()
        client.standardOutput = output
        try client.run()
        var swaps = 0
        while client.isRunning {
            swaps += 1
            try datapath.apply(service(frontend: frontend, backends: sets[swaps % sets.count]))
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        client.waitUntilExit()
        let answer = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        XCTAssertEqual(answer["errors"] as? [String: Int], [:], "after \(swaps) swaps")
        XCTAssertEqual((answer["names"] as? [String: Int])?.values.reduce(0, +), 400)
        XCTAssertGreaterThan(swaps, 50)
        let last = sets[swaps % sets.count]
        XCTAssertEqual(try datapath.programmed(), [service(frontend: frontend, backends: last)])
        XCTAssertEqual(try datapath.services.entries().count, 1 + last.count, "slots of the old banks are gone")
        XCTAssertEqual(try datapath.backends.entries().count, last.count, "ids no set uses are freed")
    }

    func testTranslationGoesOnWithoutTheAgentAndARestartReadsTheServicesBack() throws {
        let frontend = clusterIP(13)
        let applied = LoadBalancedService(
            id: 9,
            frontend: ServiceFrontend(address: address(frontend), port: ServicePods.tcpPort, proto: IPProtocol.tcp),
            backends: [
                ServiceBackend(address: address(pods.ipv4(3)), port: ServicePods.tcpPort),
                ServiceBackend(address: address(pods.ipv4(1)), port: ServicePods.tcpPort, state: .maintenance),
                ServiceBackend(address: address(pods.ipv4(2)), port: ServicePods.tcpPort, weight: 5),
            ], affinityTimeout: 300)
        try datapath.apply(applied)
        XCTAssertEqual(try datapath.programmed(), [applied])

        // What a SIGKILLed agent leaves: no descriptor of the agent's, only the pins.
        balancer?.stop()
        balancer = nil
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(pinRoot)/sock-links/na_sock4_connect"))
        // ClientIP affinity: the pod sticks to one backend taking new connections, and keeps it across the restart.
        let (names, _) = try tcp(frontend, 40)
        XCTAssertEqual(names.count, 1, "\(names)")
        XCTAssertTrue(["b2", "b3"].contains(names.keys.first ?? ""), "\(names)")

        balancer = try SocketLoadBalancing.start(cgroupRoot: pods.cgroup, pinRoot: pinRoot)
        XCTAssertEqual(try datapath.programmed(), [applied])
        let (again, peers) = try tcp(frontend, 40)
        XCTAssertEqual(again, names)
        XCTAssertEqual(peers, ["\(frontend):\(ServicePods.tcpPort)": 40])

        // The cleanup detaches: the frontend is an address nobody routes again.
        balancer?.stop()
        balancer = nil
        try SocketLoadBalancing.detach(pinRoot: pinRoot)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(pinRoot)/sock-links/na_sock4_connect"))
        let detached = try pods.client(["tcp", frontend, String(ServicePods.tcpPort), "3"])
        XCTAssertEqual(detached["names"] as? [String: Int], [:])
        XCTAssertEqual((detached["errors"] as? [String: Int])?.values.reduce(0, +), 3)
    }

    func testRestartsUnderLoadLeaveNoGap() throws {
        let frontend = clusterIP(16)
        try datapath.apply(service(frontend: frontend, backends: [1, 2, 3]))
        let client = pods.clientProcess(["tcp", frontend, String(ServicePods.tcpPort), "300"])
        let output = Pipe()
        client.standardOutput = output
        try client.run()
        var restarts = 0
        while client.isRunning {
            restarts += 1
            balancer?.stop()
            balancer = try SocketLoadBalancing.start(cgroupRoot: pods.cgroup, pinRoot: pinRoot)
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        client.waitUntilExit()
        let answer = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        XCTAssertEqual(answer["errors"] as? [String: Int], [:], "after \(restarts) restarts")
        XCTAssertEqual((answer["names"] as? [String: Int])?.values.reduce(0, +), 300)
        XCTAssertGreaterThan(restarts, 3)
    }

    func testARestartOnAnotherCgroupRootMovesTheHooksThere() throws {
        let frontend = clusterIP(15)
        try datapath.apply(service(frontend: frontend, backends: [1]))
        XCTAssertEqual(try tcp(frontend, 3).names, ["b1": 3])
        let other = "\(pods.cgroup)-other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: false)
        defer { _ = rmdir(other) }

        balancer?.stop()
        balancer = try SocketLoadBalancing.start(cgroupRoot: other, pinRoot: pinRoot)
        let link = try XCTUnwrap(try BPFLink.openPinned("\(pinRoot)/sock-links/na_sock4_connect"))
        XCTAssertEqual(try link.cgroupAttachment().cgroupID, try CgroupV2.id(of: other))
        // The client's cgroup is not below the new root: its connects are its own again.
        let answer = try pods.client(["tcp", frontend, String(ServicePods.tcpPort), "2"])
        XCTAssertEqual(answer["names"] as? [String: Int], [:])
        balancer?.stop()
        balancer = nil
        try SocketLoadBalancing.detach(pinRoot: pinRoot)
    }

    func testBackendIDsAreSharedAndFreedWithTheirLastService() throws {
        let first = service(id: 1, frontend: clusterIP(20), backends: [1, 2])
        let second = service(id: 2, frontend: clusterIP(21), backends: [2, 3])
        try datapath.apply(first)
        try datapath.apply(second)
        XCTAssertEqual(try datapath.backends.entries().count, 3, "backend 2 has one id for both services")
        XCTAssertEqual(try datapath.programmed(), [first, second])
        try datapath.remove(first)
        XCTAssertEqual(
            Set(try datapath.backends.entries().compactMap { $0.value.backend?.address }),
            [address(pods.ipv4(2)), address(pods.ipv4(3))])
        try datapath.remove(second)
        XCTAssertEqual(try datapath.backends.entries().count, 0)
        XCTAssertEqual(try datapath.services.entries().count, 0)
        XCTAssertEqual(try datapath.programmed(), [])
    }

    func testWeightsShareConnectionsInProportion() throws {
        let frontend = clusterIP(30)
        let weighted = service(frontend: frontend, backends: [1, 2, 3], weights: [1: 2, 2: 6, 3: 0])
        try datapath.apply(weighted)
        // Weights 2 and 6 are 1 and 3 slots; weight 0 keeps one slot after them, never picked.
        XCTAssertEqual(try datapath.services.entries().count, 1 + 4 + 1)
        XCTAssertEqual(try datapath.programmed(), [weighted])
        let (names, _) = try tcp(frontend, 400)
        XCTAssertEqual(names.values.reduce(0, +), 400)
        XCTAssertNil(names["b3"], "the weight-0 backend got new connections: \(names)")
        let heavy = names["b2"] ?? 0
        XCTAssertTrue((240...360).contains(heavy), "weight 3 of 4 got \(heavy) of 400: \(names)")
    }

    func testClientIPAffinityKeepsEachPodOnItsBackendUntilItStopsTakingConnectionsOrTheTimeoutPasses() throws {
        let frontend = clusterIP(31)
        let second = pods.clientNetns(2)
        // A timeout no step of the test comes near, even on an emulated machine; the expiry is checked last with
        // a short one.
        try datapath.apply(service(frontend: frontend, backends: [1, 2, 3], affinity: 600))
        let first = try tcp(frontend, 50).names
        let other = try tcp(frontend, 50, netns: second).names
        XCTAssertEqual(first.count, 1, "the first pod was spread: \(first)")
        XCTAssertEqual(other.count, 1, "the second pod was spread: \(other)")
        XCTAssertEqual(first.values.first, 50)

        // The second pod's backend terminates: it moves at once, and sticks to its new one.
        let left = Int(other.keys.first!.dropFirst())!
        try datapath.apply(
            service(frontend: frontend, backends: [1, 2, 3], states: [left: .terminating], affinity: 600))
        let moved = try tcp(frontend, 50, netns: second).names
        XCTAssertEqual(moved.count, 1, "\(moved)")
        XCTAssertNotEqual(moved.keys.first, other.keys.first)
        let stayed = try tcp(frontend, 20).names
        XCTAssertEqual(stayed.count, 1, "\(stayed)")
        if first.keys.first != other.keys.first {
            XCTAssertEqual(stayed.keys.first, first.keys.first, "the first pod's backend goes on")
        }

        // Affinity outweighs weights while it lasts; once the timeout (now 1 s) has passed the pod picks anew, and
        // the weights (1 against 4999 each) all but rule its old backend out.
        let kept = Int(stayed.keys.first!.dropFirst())!
        let heavy = Dictionary(uniqueKeysWithValues: [1, 2, 3].map { ($0, UInt16($0 == kept ? 1 : 4999)) })
        try datapath.apply(service(frontend: frontend, backends: [1, 2, 3], weights: heavy, affinity: 600))
        XCTAssertEqual(try tcp(frontend, 20).names, stayed)
        try datapath.apply(service(frontend: frontend, backends: [1, 2, 3], weights: heavy, affinity: 1))
        // Expiry counts whole seconds: an entry lasts between the timeout and one second more.
        usleep(2_200_000)
        let anew = try tcp(frontend, 20).names
        XCTAssertEqual(anew.count, 1, "\(anew)")
        XCTAssertNotEqual(anew.keys.first, stayed.keys.first, "the pod kept its backend past the timeout")
    }

    func testAPodThatIsTheOnlyBackendReachesItselfThroughTheService() throws {
        let frontend = clusterIP(32)
        try datapath.apply(service(frontend: frontend, backends: [1]))
        try datapath.apply(
            service(id: 8, frontend: frontend, port: ServicePods.udpPort, proto: IPProtocol.udp, backends: [1]))
        let (names, peers) = try tcp(frontend, 20, netns: pods.backendNetns(1))
        XCTAssertEqual(names, ["b1": 20])
        XCTAssertEqual(peers, ["\(frontend):\(ServicePods.tcpPort)": 20])
        let udp = try pods.client(["udp", frontend, String(ServicePods.udpPort), "10"], netns: pods.backendNetns(1))
        XCTAssertEqual(udp["names"] as? [String: Int], ["b1": 10])
        XCTAssertEqual(udp["sources"] as? [String: Int], ["\(frontend):\(ServicePods.udpPort)": 10])
    }

    func testABackendOfAnotherFamilyIsRefused() {
        let mixed = LoadBalancedService(
            id: 3, frontend: ServiceFrontend(address: address("10.96.0.1"), port: 80, proto: IPProtocol.tcp),
            backends: [ServiceBackend(address: address("fd00::1"), port: 80)])
        XCTAssertThrowsError(try datapath.apply(mixed)) { error in
            XCTAssertEqual((error as? AgentError)?.field, "backend-addresses[0].ip")
        }
    }
}

/// One TCP connection of the client pod held open through the `hold` mode of the client script.
private final class HeldConnection {
    private let client: LineClient
    /// The backend that accepted the connection.
    let backend: String

    init(_ process: Process) throws {
        client = try LineClient(process)
        backend = try client.readLine()
    }

    /// Sends `text` and returns the backend's answer ("b2:text").
    func exchange(_ text: String) throws -> String { try client.send(text) }

    func close() { client.close() }
}
