import CNodeABI
import DatapathCore
import XCTest

/// Services for clients outside the node (bpf/lib/lb_netdev.h): from_netdev takes a packet to a NodePort or
/// external frontend to a backend, to_netdev gives the backend's reply the frontend back as its source; a ClusterIP
/// frontend is left alone, and an external frontend without backends is refused back out of the interface.
extension ServiceTranslationTests {
    static let nodeAddress = "198.51.100.1"
    static let outsideClient = "192.0.2.7"
    static let outsideClient6 = "2001:db8::7"
    static let nodeAddress6 = "2001:db8::1"

    func testAPacketFromOutsideToAnExternalFrontendReachesTheBackendAndTheReplyComesFromTheFrontend() throws {
        let external = UInt16(NA_LB_F_EXTERNAL)
        for (client, node, backend) in [
            (Self.outsideClient, Self.nodeAddress, Net.peer4), (Self.outsideClient6, Self.nodeAddress6, Net.peer6),
        ] {
            try addService(node, port: 30080, backends: [(backend, 8080)], flags: external)
            let syn = ServiceFrame.checksummed(.tcp(client, node, sport: 40000, dport: 30080))
            let (retval, out) = try run(.fromNetdev, syn)
            XCTAssertEqual(retval, Verdict.TC_ACT_OK, client)
            XCTAssertEqual(out.source, bytes(client), "the backend sees the real client")
            XCTAssertEqual(out.destination, bytes(backend))
            XCTAssertEqual(out.dport, 8080)
            XCTAssertTrue(out.ipChecksumValid)
            XCTAssertTrue(out.l4ChecksumValid, client)

            let synAck = ServiceFrame.checksummed(
                .tcp(backend, client, sport: 8080, dport: 40000, flags: [.syn, .ack]))
            let (replyVerdict, reply) = try run(.toNetdev, synAck)
            XCTAssertEqual(replyVerdict, Verdict.TC_ACT_OK)
            XCTAssertEqual(reply.source, bytes(node), "the reply leaves from the address the client connected to")
            XCTAssertEqual(reply.sport, 30080)
            XCTAssertEqual(reply.destination, bytes(client))
            XCTAssertTrue(reply.ipChecksumValid)
            XCTAssertTrue(reply.l4ChecksumValid, client)

            // The backend's own traffic to another port of the client is not the service's.
            let other = ServiceFrame.checksummed(.tcp(backend, client, sport: 8080, dport: 40001, flags: .ack))
            let (_, untouched) = try run(.toNetdev, other)
            XCTAssertEqual(untouched.source, bytes(backend))
        }
    }

    func testAClusterIPFrontendIsNotTranslatedForClientsOutside() throws {
        try addService(Self.nodeAddress, port: 30080, backends: [(Net.peer4, 8080)])
        let syn = ServiceFrame.checksummed(.tcp(Self.outsideClient, Self.nodeAddress, sport: 40000, dport: 30080))
        let (retval, out) = try run(.fromNetdev, syn)
        XCTAssertEqual(retval, Verdict.TC_ACT_OK)
        XCTAssertEqual(out.destination, bytes(Self.nodeAddress))
        XCTAssertEqual(out.dport, 30080)
    }

    func testAnExternalFrontendWithoutBackendsRefusesTheClientOutside() throws {
        try addService(Self.nodeAddress, port: 30080, backends: [], flags: UInt16(NA_LB_F_EXTERNAL))
        let reason = NA_DROP_NO_SERVICE.rawValue
        let before = try h.metric(reason: reason, direction: NA_DIR_INGRESS.rawValue)
        let syn = ServiceFrame.checksummed(.tcp(Self.outsideClient, Self.nodeAddress, sport: 40000, dport: 30080))
        let result = try h.program(Program.fromNetdev.rawValue).testRun(packet: syn)
        XCTAssertEqual(result.retval, Verdict.TC_ACT_REDIRECT, "sent back out of the interface")
        let reset = try XCTUnwrap(ServiceFrame(result.packetOut))
        XCTAssertEqual(reset.source, bytes(Self.nodeAddress))
        XCTAssertEqual(reset.destination, bytes(Self.outsideClient))
        XCTAssertEqual(reset.sport, 30080)
        XCTAssertTrue(reset.l4ChecksumValid)
        XCTAssertEqual(result.packetOut[47], 0x14, "RST and ACK")
        let after = try h.metric(reason: reason, direction: NA_DIR_INGRESS.rawValue)
        XCTAssertEqual(after.packets - before.packets, 1)
    }
}

/// ClientIP affinity on the tc path: keyed by the client's address, as Cilium's per-packet path keys it.
extension ServiceTranslationTests {
    /// The service with `timeout` seconds of ClientIP affinity (slot 0's affinity_timeout) and every backend in
    /// na_lb_aff_match, as the agent writes them for backends taking new connections.
    private func setAffinity(_ frontend: String, port: UInt16, timeout: UInt32, backends ids: [UInt32]) throws {
        let address = try XCTUnwrap(IPAddress(frontend))
        var key = na_lb_service_key()
        setTupleBytes(&key.addr, address.keyBytes)
        key.family = address.family.rawValue
        key.proto = Proto.tcp
        key.port = port.bigEndian
        let services = try TypedMap<na_lb_service_key, na_lb_service_value>(
            XCTUnwrap(h.object.map(named: "na_lb_services")))
        var head = try XCTUnwrap(try services.lookup(key))
        head.affinity_timeout = timeout
        try services.update(key, head)
        let match = try TypedMap<na_lb_aff_match_key, UInt8>(XCTUnwrap(h.object.map(named: "na_lb_aff_match")))
        for id in ids { try match.update(na_lb_aff_match_key(backend_id: id, service_id: Self.serviceID), 1) }
    }

    func testClientIPAffinityKeepsEachClientAddressOnOneBackendOfTheTCPath() throws {
        let pool = ["10.0.2.20", "10.0.2.21", "10.0.2.22", "10.0.2.23"]
        try h.addIPCache("10.0.2.0/24", identity: Net.peerIdentity)
        try addService(
            Self.nodeAddress, port: 30080, backends: pool.map { ($0, 8080) }, flags: UInt16(NA_LB_F_EXTERNAL))
        try setAffinity(Self.nodeAddress, port: 30080, timeout: 60, backends: [100, 101, 102, 103])
        defer { _ = try? clearAffinity() }

        var perClient: [String: Set<[UInt8]>] = [:]
        for client in (1...8).map({ "192.0.2.\($0)" }) {
            for sport in UInt16(41000)..<41010 {
                let syn = ServiceFrame.checksummed(.tcp(client, Self.nodeAddress, sport: sport, dport: 30080))
                let (retval, out) = try run(.fromNetdev, syn)
                XCTAssertEqual(retval, Verdict.TC_ACT_OK)
                perClient[client, default: []].insert(out.destination)
            }
        }
        for (client, chosen) in perClient {
            XCTAssertEqual(chosen.count, 1, "10 connections of \(client) went to one backend")
        }
        XCTAssertGreaterThan(Set(perClient.values.compactMap(\.first)).count, 1, "8 clients use more than one backend")

        // The client's backend leaves the service (a new set under new ids, as the agent swaps one in, and no
        // affinity match for it): the client's affinity entry still names it, and is not followed.
        let client = "192.0.2.1"
        let kept = try XCTUnwrap(perClient[client]?.first)
        let keptID = UInt32(100 + pool.firstIndex { bytes($0) == kept }!)
        let remaining = pool.filter { bytes($0) != kept }
        try addService(
            Self.nodeAddress, port: 30080, backends: remaining.map { ($0, 8080) }, flags: UInt16(NA_LB_F_EXTERNAL),
            firstID: 200)
        try setAffinity(Self.nodeAddress, port: 30080, timeout: 60, backends: [200, 201, 202])
        let match = try TypedMap<na_lb_aff_match_key, UInt8>(XCTUnwrap(h.object.map(named: "na_lb_aff_match")))
        _ = try match.delete(na_lb_aff_match_key(backend_id: keptID, service_id: Self.serviceID))
        var after: Set<[UInt8]> = []
        for sport in UInt16(42000)..<42010 {
            let (_, out) = try run(
                .fromNetdev, ServiceFrame.checksummed(.tcp(client, Self.nodeAddress, sport: sport, dport: 30080)))
            XCTAssertNotEqual(out.destination, kept, "a backend gone from the service gets no new flow of its client")
            after.insert(out.destination)
        }
        XCTAssertEqual(after.count, 1, "the client sticks to its new backend: \(after)")
    }

    private func clearAffinity() throws {
        for name in ["na_lb_aff_ip", "na_lb_aff_match"] {
            let map = try XCTUnwrap(h.object.map(named: name), name)
            for key in try map.keys() { try map.delete(key: key) }
        }
    }
}
