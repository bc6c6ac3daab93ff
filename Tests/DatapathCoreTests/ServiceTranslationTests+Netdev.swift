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
