import AgentAPI
import DatapathCore
import Glibc
import XCTest

@testable import Agent

/// `na_lb_ports` as `SocketLoadBalancer` keeps it: the bit of every frontend's port while a frontend has it, the map
/// complete from the start, rebuilt by a restarted agent; and from_endpoint (BPF_PROG_TEST_RUN) translating a
/// packet to a frontend only when its port's bit is set or the map is not complete.
final class LBFrontendPortsTests: XCTestCase {
    static let client = "10.0.1.5"
    static let frontend = ServiceFrontend(address: IPAddress("10.96.0.10")!, port: 80, proto: IPProtocol.tcp)
    static let backend = "10.0.5.1"

    private var object: BPFObject!
    private var balancer: SocketLoadBalancer!
    private var ports: BitWords!

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
        object = try TestRunEndpoint.load(
            client: Self.client,
            maxEntries: ["na_ct": 4096, "na_lb_flows": 4096, "na_ipcache": 64, "na_endpoints": 8, "na_policy": 8])
        ports = try BitWords(XCTUnwrap(object.map(named: "na_lb_ports")), words: UInt32(NA_LB_PORTS_COMPLETE))
        balancer = try SocketLoadBalancer(object: object)
    }

    private func service(
        id: UInt32 = 7, address: String = "10.96.0.10", port: UInt16 = 80, proto: UInt8 = 6, backends: Int = 1
    ) -> LoadBalancedService {
        LoadBalancedService(
            id: id, frontend: ServiceFrontend(address: IPAddress(address)!, port: port, proto: proto),
            backends: (1...backends).map { ServiceBackend(address: IPAddress("10.0.5.\($0)")!, port: 8080) })
    }

    /// The word holding the bit of `port` for `proto`.
    private func word(_ proto: UInt8, _ port: UInt16) -> UInt32 {
        LBFrontendPorts.Port(proto: proto, port: port).index / 64
    }

    /// Whether the bit of `port` for `proto` is set.
    private func bit(_ proto: UInt8, _ port: UInt16) throws -> Bool {
        try ports.read().bits.contains(LBFrontendPorts.Port(proto: proto, port: port).index)
    }

    private var complete: Bool { get throws { try ports.read().complete } }

    /// Every set bit, as (protocol, port).
    private func setBits() throws -> Set<[UInt16]> {
        Set(
            try ports.read().bits.map {
                let port = LBFrontendPorts.Port(index: $0)
                return [UInt16(port.proto), port.port]
            })
    }

    /// Where from_endpoint sends a TCP SYN from the client to 10.96.0.10:80: the destination address and port.
    private func destinationOfSYN(sport: UInt16) throws -> (address: [UInt8], port: UInt16) {
        for name in ["na_lb_flows", "na_ct"] {
            let map = try XCTUnwrap(object.map(named: name))
            for key in try map.keys() { try map.delete(key: key) }
        }
        let frame = TestRunEndpoint.syn(
            from: Self.client, to: Self.frontend.address, sport: sport, dport: Self.frontend.port)
        let program = try XCTUnwrap(object.program(named: "from_endpoint"))
        let result = try program.testRun(packet: frame)
        XCTAssertEqual(result.retval, 0, "TC_ACT_OK")
        let out = result.packetOut
        XCTAssertGreaterThanOrEqual(out.count, 54)
        return (Array(out[30..<34]), UInt16(out[36]) << 8 | UInt16(out[37]))
    }

    func testAPortsBitIsSetWhileAFrontendHasItAndTheMapIsCompleteFromTheStart() throws {
        XCTAssertTrue(try complete, "no service yet, and the map is complete")
        XCTAssertEqual(try setBits(), [])

        try balancer.apply(service())
        try balancer.apply(service(id: 8, address: "10.96.0.11"))  // another frontend on TCP 80
        try balancer.apply(service(id: 9, port: 53, proto: IPProtocol.udp))
        try balancer.apply(service(id: 10, port: 0x1234))  // a port whose bit is in another word than 80's
        XCTAssertEqual(try setBits(), [[6, 80], [17, 53], [6, 0x1234]])
        try balancer.apply(service(backends: 2))  // a new backend set: the frontend is not new, nothing moves
        XCTAssertEqual(try setBits(), [[6, 80], [17, 53], [6, 0x1234]])

        try balancer.remove(service())
        XCTAssertTrue(try bit(6, 80), "10.96.0.11:80 still has the port")
        try balancer.remove(service(id: 8, address: "10.96.0.11"))
        XCTAssertFalse(try bit(6, 80), "no frontend has TCP 80 any more")
        try balancer.remove(service(id: 9, port: 53, proto: IPProtocol.udp))
        try balancer.remove(service(id: 10, port: 0x1234))
        XCTAssertEqual(try setBits(), [])
        XCTAssertTrue(try complete)
    }

    /// The maps are pinned and outlive the agent: a restarted one sets what is missing (a map new on the node) and
    /// drops the bits of frontends gone while no agent ran.
    func testARestartedAgentRebuildsTheBits() throws {
        try balancer.apply(service())
        try ports.map.update(word(17, 69), 1 << 5)  // UDP 69, which no frontend has
        try ports.map.update(word(6, 80), 0)  // TCP 80's bit lost
        XCTAssertEqual(try setBits(), [[17, 69]])
        try ports.map.update(UInt32(NA_LB_PORTS_COMPLETE), 0)

        balancer = try SocketLoadBalancer(object: object)
        XCTAssertEqual(try setBits(), [[6, 80]])
        XCTAssertTrue(try complete)
        try balancer.remove(service())
        XCTAssertEqual(try setBits(), [])
    }

    /// What the datapath does with the bits: a packet to a frontend whose port has no bit in a complete map is left
    /// alone (as it is for any address that is no frontend); an incomplete map translates by na_lb_services alone.
    func testFromEndpointLooksUpFrontendsOnlyOnPortsWithTheirBit() throws {
        try balancer.apply(service())
        let backend = IPAddress(Self.backend)!.bytes
        var destination = try destinationOfSYN(sport: 40000)
        XCTAssertEqual(destination.address, backend)
        XCTAssertEqual(destination.port, 8080)

        try ports.map.update(word(6, 80), 0)  // the bit of TCP 80 cleared behind the agent's back
        destination = try destinationOfSYN(sport: 40001)
        XCTAssertEqual(destination.address, Self.frontend.address.bytes, "the lookup was skipped")
        XCTAssertEqual(destination.port, 80)

        try ports.map.update(UInt32(NA_LB_PORTS_COMPLETE), 0)
        destination = try destinationOfSYN(sport: 40002)
        XCTAssertEqual(destination.address, backend, "an incomplete map says nothing")
        XCTAssertEqual(destination.port, 8080)
    }
}
