import CNodeABI
import DatapathCore
import XCTest

/// Per-packet service translation in the endpoint programs (bpf/lib/lb_xlate.h) with BPF_PROG_TEST_RUN: a packet
/// the endpoint sends to a frontend leaves for a backend with valid checksums, conntrack and policy see the
/// backend, later packets of the flow keep it, replies come back from the frontend; a frontend without backends
/// (`+Reject`) answers with a refusal.
///
/// Services are written into the load balancer maps as the agent's `SocketLoadBalancer` writes them (slot 0, the
/// backend slots of bank 0, the backends); the agent's writer itself is exercised in AgentTests.
final class ServiceTranslationTests: XCTestCase {
    static let frontend4 = "10.96.0.10"
    static let frontend6 = "fd00:96::10"
    static let serviceID: UInt32 = 7

    var h: DatapathHarness!
    private var services: TypedMap<na_lb_service_key, na_lb_service_value>!
    private var backends: TypedMap<UInt32, na_lb_backend>!

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
        h = try DatapathHarness.shared()
        services = try TypedMap(XCTUnwrap(h.object.map(named: "na_lb_services")))
        backends = try TypedMap(XCTUnwrap(h.object.map(named: "na_lb_backends")))
        try clear()
        try h.reset()
        // Egress allows only what a backend serves: a packet policy judged at the frontend would be dropped.
        try Setup(policy: [
            .egress(Net.peerIdentity, Proto.tcp, 8080), .egress(Net.peerIdentity, Proto.udp, 5353),
        ]).apply(to: h)
    }

    override func tearDownWithError() throws {
        guard h != nil else { return }
        try clear()
        try h.reset()
    }

    /// Empties the load balancer maps, which the shared harness does not reset.
    private func clear() throws {
        for name in ["na_lb_services", "na_lb_backends", "na_lb_flows", "na_lb_maglev"] {
            let map = try XCTUnwrap(h.object.map(named: name), name)
            for key in try map.keys() { try map.delete(key: key) }
        }
    }

    /// A service at frontend:port with the backends given (address, port), all taking new flows.
    func addService(
        _ frontend: String, port: UInt16, proto: UInt8 = Proto.tcp, backends list: [(String, UInt16)],
        flags: UInt16 = 0, firstID: UInt32 = 100
    ) throws {
        let address = try XCTUnwrap(IPAddress(frontend))
        var key = na_lb_service_key()
        setTupleBytes(&key.addr, address.keyBytes)
        key.family = address.family.rawValue
        key.proto = proto
        key.port = port.bigEndian
        for (index, (backendAddress, backendPort)) in list.enumerated() {
            let id = firstID + UInt32(index)
            let backendIP = try XCTUnwrap(IPAddress(backendAddress))
            var backend = na_lb_backend()
            setTupleBytes(&backend.addr, backendIP.keyBytes)
            backend.family = backendIP.family.rawValue
            backend.proto = proto
            backend.port = backendPort.bigEndian
            backend.weight = 1
            try backends.update(id, backend)
            var slotKey = key
            slotKey.slot = UInt16(index + 1)
            var slot = na_lb_service_value()
            slot.backend_id = id
            slot.position = UInt16(index)
            try services.update(slotKey, slot)
        }
        var head = na_lb_service_value()
        head.service_id = Self.serviceID
        head.count = UInt16(list.count)
        head.flags = flags
        try services.update(key, head)
    }

    func run(_ program: Program, _ frame: [UInt8]) throws -> (retval: UInt32, out: ServiceFrame) {
        let result = try h.program(program.rawValue).testRun(packet: frame)
        return (result.retval, try XCTUnwrap(ServiceFrame(result.packetOut), "\(program) returned no TCP/UDP frame"))
    }

    func bytes(_ text: String) -> [UInt8] { text.contains(":") ? ipv6Address(text) : ipv4Address(text) }

    func testTCPSynToAFrontendLeavesForTheBackendWithValidChecksumsAndPolicySeesTheBackend() throws {
        try addService(Self.frontend4, port: 80, backends: [(Net.peer4, 8080)])
        let syn = ServiceFrame.checksummed(.tcp(Net.ep4, Self.frontend4, sport: 40000, dport: 80))
        XCTAssertEqual(ServiceFrame(syn)?.l4ChecksumValid, true, "the input is valid to begin with")
        let allowedBefore = try h.metric(reason: NA_REASON_FORWARDED.rawValue, direction: NA_DIR_EGRESS.rawValue)
        let (retval, out) = try run(.fromEndpoint, syn)
        XCTAssertEqual(retval, Verdict.TC_ACT_OK)
        XCTAssertEqual(out.source, bytes(Net.ep4))
        XCTAssertEqual(out.destination, bytes(Net.peer4))
        XCTAssertEqual(out.sport, 40000)
        XCTAssertEqual(out.dport, 8080)
        XCTAssertTrue(out.ipChecksumValid, "IPv4 header checksum")
        XCTAssertTrue(out.l4ChecksumValid, "TCP checksum")
        let allowedAfter = try h.metric(reason: NA_REASON_FORWARDED.rawValue, direction: NA_DIR_EGRESS.rawValue)
        XCTAssertEqual(allowedAfter.packets - allowedBefore.packets, 1)

        // Conntrack tracks the flow to the backend, allowed by the backend's rule and identity.
        var key = na_ct_key()
        setTupleBytes(&key.saddr, bytes(Net.ep4))
        setTupleBytes(&key.daddr, bytes(Net.peer4))
        key.sport = UInt16(40000).bigEndian
        key.dport = UInt16(8080).bigEndian
        key.proto = Proto.tcp
        key.family = UInt8(NA_FAMILY_IPV4)
        key.direction = UInt8(NA_DIR_EGRESS.rawValue)
        let entry = try XCTUnwrap(try h.conntrack.lookup(key), "a conntrack entry for the backend's tuple")
        XCTAssertEqual(entry.src_identity, Net.peerIdentity)
    }

    func testLaterPacketsOfAFlowKeepTheirBackendAndRepliesComeFromTheFrontend() throws {
        let pool = ["10.0.2.20", "10.0.2.21", "10.0.2.22", "10.0.2.23"]
        try h.addIPCache("10.0.2.0/24", identity: Net.peerIdentity)
        try addService(Self.frontend4, port: 80, backends: pool.map { ($0, 8080) })
        var chosen: [UInt16: [UInt8]] = [:]
        for sport in UInt16(41000)..<41040 {
            let (_, out) = try run(
                .fromEndpoint, ServiceFrame.checksummed(.tcp(Net.ep4, Self.frontend4, sport: sport, dport: 80)))
            chosen[sport] = out.destination
        }
        XCTAssertGreaterThan(Set(chosen.values).count, 1, "40 flows over 4 backends use more than one")
        for (sport, backend) in chosen {
            let ack = ServiceFrame.checksummed(.tcp(Net.ep4, Self.frontend4, sport: sport, dport: 80, flags: .ack))
            let (retval, out) = try run(.fromEndpoint, ack)
            XCTAssertEqual(retval, Verdict.TC_ACT_OK)
            XCTAssertEqual(out.destination, backend, "flow from port \(sport) moved to another backend")
            XCTAssertTrue(out.l4ChecksumValid)

            let backendText = try XCTUnwrap(IPAddress(family: .ipv4, bytes: backend)).description
            let synAck = ServiceFrame.checksummed(
                .tcp(backendText, Net.ep4, sport: 8080, dport: sport, flags: [.syn, .ack]))
            let (replyVerdict, reply) = try run(.toEndpoint, synAck)
            XCTAssertEqual(replyVerdict, Verdict.TC_ACT_OK, "the reply matches the flow conntrack tracked")
            XCTAssertEqual(reply.source, bytes(Self.frontend4))
            XCTAssertEqual(reply.sport, 80)
            XCTAssertEqual(reply.destination, bytes(Net.ep4))
            XCTAssertEqual(reply.dport, sport)
            XCTAssertTrue(reply.ipChecksumValid)
            XCTAssertTrue(reply.l4ChecksumValid)
        }
    }

    func testIPv6FlowsAreTranslatedBothWays() throws {
        try addService(Self.frontend6, port: 80, backends: [(Net.peer6, 8080)])
        let syn = ServiceFrame.checksummed(.tcp(Net.ep6, Self.frontend6, sport: 40000, dport: 80))
        let (retval, out) = try run(.fromEndpoint, syn)
        XCTAssertEqual(retval, Verdict.TC_ACT_OK)
        XCTAssertEqual(out.destination, bytes(Net.peer6))
        XCTAssertEqual(out.dport, 8080)
        XCTAssertTrue(out.l4ChecksumValid, "TCP checksum over the IPv6 pseudo header")

        let synAck = ServiceFrame.checksummed(.tcp(Net.peer6, Net.ep6, sport: 8080, dport: 40000, flags: [.syn, .ack]))
        let (replyVerdict, reply) = try run(.toEndpoint, synAck)
        XCTAssertEqual(replyVerdict, Verdict.TC_ACT_OK)
        XCTAssertEqual(reply.source, bytes(Self.frontend6))
        XCTAssertEqual(reply.sport, 80)
        XCTAssertTrue(reply.l4ChecksumValid)
    }

    func testUDPIsTranslatedBothWaysInBothFamilies() throws {
        for (client, frontend, backend) in [(Net.ep4, Self.frontend4, Net.peer4), (Net.ep6, Self.frontend6, Net.peer6)]
        {
            try addService(frontend, port: 53, proto: Proto.udp, backends: [(backend, 5353)])
            let query = ServiceFrame.checksummed(.udp(client, frontend, sport: 40053, dport: 53))
            let (retval, out) = try run(.fromEndpoint, query)
            XCTAssertEqual(retval, Verdict.TC_ACT_OK, client)
            XCTAssertEqual(out.destination, bytes(backend))
            XCTAssertEqual(out.dport, 5353)
            XCTAssertTrue(out.l4ChecksumValid, "UDP checksum, \(client)")

            let answer = ServiceFrame.checksummed(.udp(backend, client, sport: 5353, dport: 40053))
            let (replyVerdict, reply) = try run(.toEndpoint, answer)
            XCTAssertEqual(replyVerdict, Verdict.TC_ACT_OK, client)
            XCTAssertEqual(reply.source, bytes(frontend))
            XCTAssertEqual(reply.sport, 53)
            XCTAssertTrue(reply.l4ChecksumValid, "UDP checksum of the reply, \(client)")
        }
    }

    /// Later fragments carry no ports: they follow their first fragment's translation, address only.
    func testLaterFragmentsFollowTheirFirstFragmentToTheBackend() throws {
        try addService(Self.frontend4, port: 53, proto: Proto.udp, backends: [(Net.peer4, 5353)])
        var first = Packet.udp(Net.ep4, Self.frontend4, sport: 40053, dport: 53)
        first.payload = [UInt8](repeating: 0xab, count: 16)
        first = first.ipv4 { $0.moreFragments = true }
        let later = Packet(
            network: .ipv4(.init(source: Net.ep4, destination: Self.frontend4, fragmentOffset: 3, proto: Proto.udp)),
            payload: [UInt8](repeating: 0xcd, count: 8))
        let (retval, out) = try run(.fromEndpoint, ServiceFrame.checksummed(first))
        XCTAssertEqual(retval, Verdict.TC_ACT_OK)
        XCTAssertEqual(out.destination, bytes(Net.peer4))
        XCTAssertEqual(out.dport, 5353)
        let result = try h.program(Program.fromEndpoint.rawValue).testRun(packet: later.bytes)
        XCTAssertEqual(result.retval, Verdict.TC_ACT_OK)
        XCTAssertEqual(Array(result.packetOut[30..<34]), bytes(Net.peer4), "the later fragment goes to the backend")
        XCTAssertEqual(checksum(Array(result.packetOut[14..<34])), 0, "IPv4 header checksum")
    }

    /// The translation's reverse half outlives its flow in the LRU map; only replies of a flow the pod sends to the
    /// frontend now are translated back. UDP reuses the tuple while its conntrack entry lives.
    func testRepliesOfAFlowReusingTheTupleWithoutTheServiceKeepTheBackendAsSource() throws {
        try addService(Self.frontend4, port: 53, proto: Proto.udp, backends: [(Net.peer4, 5353)])
        let viaService = ServiceFrame.checksummed(.udp(Net.ep4, Self.frontend4, sport: 40053, dport: 53))
        let direct = ServiceFrame.checksummed(.udp(Net.ep4, Net.peer4, sport: 40053, dport: 5353))
        let answer = ServiceFrame.checksummed(.udp(Net.peer4, Net.ep4, sport: 5353, dport: 40053))
        for (query, source, port) in [
            (viaService, Self.frontend4, UInt16(53)), (direct, Net.peer4, 5353), (viaService, Self.frontend4, 53),
        ] {
            let (retval, out) = try run(.fromEndpoint, query)
            XCTAssertEqual(retval, Verdict.TC_ACT_OK)
            XCTAssertEqual(out.destination, bytes(Net.peer4))
            let (replyVerdict, reply) = try run(.toEndpoint, answer)
            XCTAssertEqual(replyVerdict, Verdict.TC_ACT_OK)
            XCTAssertEqual(reply.source, bytes(source), "the answer to a query sent to \(source)")
            XCTAssertEqual(reply.sport, port)
            XCTAssertTrue(reply.l4ChecksumValid)
        }
    }

    /// A frontend may be a real address: the pod's replies to a connection from there stay replies, even when the
    /// client's port is the service's.
    func testRepliesToAClientAtAFrontendAddressAreNotTranslated() throws {
        try addService(Self.frontend4, port: 80, backends: [(Net.peer4, 8080)])
        try h.changePolicy([.ingress(0, Proto.tcp, 8080)])
        let syn = ServiceFrame.checksummed(.tcp(Self.frontend4, Net.ep4, sport: 80, dport: 8080))
        XCTAssertEqual(try h.run(Program.toEndpoint.rawValue, syn), Verdict.TC_ACT_OK)
        let synAck = ServiceFrame.checksummed(
            .tcp(Net.ep4, Self.frontend4, sport: 8080, dport: 80, flags: [.syn, .ack]))
        let (retval, out) = try run(.fromEndpoint, synAck)
        XCTAssertEqual(retval, Verdict.TC_ACT_OK)
        XCTAssertEqual(out.destination, bytes(Self.frontend4))
        XCTAssertEqual(out.dport, 80)
    }

    func testAnotherAddressAndPortOfTheFrontendIsNotTranslated() throws {
        try addService(Self.frontend4, port: 80, backends: [(Net.peer4, 8080)])
        try h.changePolicy([.egress(0, Proto.tcp)])
        let (retval, out) = try run(.fromEndpoint, ServiceFrame.checksummed(.tcp(Net.ep4, Self.frontend4, dport: 81)))
        XCTAssertEqual(retval, Verdict.TC_ACT_OK)
        XCTAssertEqual(out.destination, bytes(Self.frontend4))
        XCTAssertEqual(out.dport, 81)
    }
}
