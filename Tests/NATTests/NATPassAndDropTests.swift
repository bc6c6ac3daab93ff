import DatapathCore
import XCTest

@testable import NAT

/// What the NAT programs leave alone, when they drop, and how they keep a mapping's halves together.
final class NATPassAndDropTests: XCTestCase {
    typealias H = NATHarness

    func testSourceOutsideTheClusterIsUntouched() throws {
        let h = try NATHarness()
        let packet = IPv4Packet.tcp("192.168.5.5", H.world, sport: 41000, dport: 443)
        let (verdict, frame) = try h.egress(packet)
        XCTAssertEqual(verdict, TC_ACT_OK)
        XCTAssertEqual(frame, packet.bytes)
        XCTAssertEqual(try h.natEntries().count, 0)
    }

    func testDestinationInsideTheClusterIsUntouched() throws {
        let h = try NATHarness()
        let packet = IPv4Packet.tcp(H.pod, "10.244.7.9", sport: 41000, dport: 8080)
        XCTAssertEqual(try h.egress(packet).frame, packet.bytes)
        XCTAssertEqual(try h.natEntries().count, 0)
    }

    func testTrafficToTheNodeItselfIsUntouched() throws {
        let h = try NATHarness()
        let packet = IPv4Packet.tcp(H.pod, H.node, sport: 41000, dport: 10250)
        XCTAssertEqual(try h.egress(packet).frame, packet.bytes)
        XCTAssertEqual(try h.natEntries().count, 0)
    }

    func testNodeTrafficWithoutAMappingPassesIngressUntouched() throws {
        let h = try NATHarness()
        let packet = IPv4Packet.tcp(H.world, H.node, sport: 443, dport: 50123, flags: IPv4Packet.syn | IPv4Packet.ack)
        let (verdict, frame) = try h.ingress(packet)
        XCTAssertEqual(verdict, TC_ACT_OK)
        XCTAssertEqual(frame, packet.bytes)
    }

    func testNothingIsTranslatedWhileDisabled() throws {
        let h = try NATHarness(enabled: false)
        let packet = IPv4Packet.tcp(H.pod, H.world, sport: 41000, dport: 443)
        XCTAssertEqual(try h.egress(packet).frame, packet.bytes)
        XCTAssertEqual(try h.natEntries().count, 0)
    }

    func testOtherProtocolsAreUntouched() throws {
        let h = try NATHarness()
        var packet = IPv4Packet.udp(H.pod, H.world, sport: 1, dport: 2)
        packet.transport = .icmpEcho(id: 9, reply: true)  // an echo reply from a pod is not a flow it starts
        XCTAssertEqual(try h.egress(packet).frame, packet.bytes)
        XCTAssertEqual(try h.natEntries().count, 0)
    }

    func testPortExhaustionDropsWithNoPortCountedAndReported() throws {
        let h = try NATHarness(ports: 40000...40001)
        for sport in UInt16(41000)...41001 {
            XCTAssertEqual(try h.egress(.tcp(H.pod, H.world, sport: sport, dport: 443)).verdict, TC_ACT_OK)
        }
        let eventsBefore = try h.eventsEmitted()
        let (verdict, _) = try h.egress(.tcp(H.pod, H.world, sport: 41002, dport: 443))
        XCTAssertEqual(verdict, TC_ACT_SHOT)
        XCTAssertEqual(try h.dropped(NA_DROP_NAT_NO_PORT), 1)
        XCTAssertEqual(try h.eventsEmitted(), eventsBefore + 1, "a drop event")
        XCTAssertEqual(try h.natEntries().count, 4, "the failed flow left nothing behind")
        // Another destination has the whole range to itself.
        XCTAssertEqual(try h.egress(.tcp(H.pod, "198.51.100.8", sport: 41002, dport: 443)).verdict, TC_ACT_OK)
    }

    func testTrackedFlowsAreMarkedAndRepliesToInboundConnectionsAreLeftAlone() throws {
        let h = try NATHarness()
        let outbound = IPv4Packet.tcp(H.pod, H.world, sport: 41000, dport: 443)
        try h.track(NATHarness.forwardKey(outbound))
        _ = try h.egress(outbound)
        let forward = try XCTUnwrap(try h.nat.lookup(NATHarness.forwardKey(outbound)))
        XCTAssertNotEqual(forward.flags & UInt32(NA_NAT_TRACKED), 0)

        // The world connected to the pod directly (conntrack holds the flow as ingress): the pod's answer keeps
        // its own address, or the peer would not recognise it.
        var inbound = NATHarness.forwardKey(.tcp(H.world, H.pod, sport: 50000, dport: 8080))
        inbound.direction = UInt8(NA_DIR_INGRESS.rawValue)
        try h.track(inbound)
        let answer = IPv4Packet.tcp(H.pod, H.world, sport: 8080, dport: 50000, flags: IPv4Packet.syn | IPv4Packet.ack)
        XCTAssertEqual(try h.egress(answer).frame, answer.bytes)
        XCTAssertEqual(try h.natEntries().count, 2)
    }

    func testAMissingReverseHalfIsPutBackOnTheNextPacket() throws {
        let h = try NATHarness()
        let syn = IPv4Packet.tcp(H.pod, H.world, sport: 41000, dport: 443)
        let port = try XCTUnwrap(ParsedIPv4(h.egress(syn).frame)).sport
        let forwardKey = NATHarness.forwardKey(syn)
        let forward = try XCTUnwrap(try h.nat.lookup(forwardKey))
        let reverseKey = NATHalves.reverseKey(forward: forwardKey, entry: forward)
        XCTAssertTrue(try h.nat.delete(reverseKey))

        let again = try XCTUnwrap(ParsedIPv4(h.egress(syn).frame))
        XCTAssertEqual(again.sport, port, "the mapping is kept")
        let reverse = try XCTUnwrap(try h.nat.lookup(reverseKey), "reverse half restored")
        XCTAssertEqual(UInt16(bigEndian: reverse.port), 41000)
    }

    func testAMissingForwardHalfIsPutBackByAReply() throws {
        let h = try NATHarness()
        let syn = IPv4Packet.tcp(H.pod, H.world, sport: 41000, dport: 443)
        let port = try XCTUnwrap(ParsedIPv4(h.egress(syn).frame)).sport
        let forwardKey = NATHarness.forwardKey(syn)
        XCTAssertTrue(try h.nat.delete(forwardKey))

        let reply = IPv4Packet.tcp(H.world, H.node, sport: 443, dport: port, flags: IPv4Packet.syn | IPv4Packet.ack)
        XCTAssertEqual(ParsedIPv4(try h.ingress(reply).frame)?.destination, H.pod)
        let forward = try XCTUnwrap(try h.nat.lookup(forwardKey), "forward half restored")
        XCTAssertEqual(UInt16(bigEndian: forward.port), port)
        XCTAssertEqual(ParsedIPv4(try h.egress(syn).frame)?.sport, port, "and used by the next packet")
    }

    func testAMappingWhosePortWasTakenMovesToANewPort() throws {
        let h = try NATHarness(ports: 40000...40001)
        let a = IPv4Packet.tcp(H.pod, H.world, sport: 41000, dport: 443)
        let portA = try XCTUnwrap(ParsedIPv4(h.egress(a).frame)).sport
        let keyA = NATHarness.forwardKey(a)
        let forwardA = try XCTUnwrap(try h.nat.lookup(keyA))
        let reverseKeyA = NATHalves.reverseKey(forward: keyA, entry: forwardA)
        // Another flow's reverse half now holds a's port (as if a's were evicted and the port reclaimed).
        var stolen = try XCTUnwrap(try h.nat.lookup(reverseKeyA))
        stolen.port = UInt16(42000).bigEndian
        try h.nat.update(reverseKeyA, stolen)

        let moved = try XCTUnwrap(ParsedIPv4(h.egress(a).frame))
        XCTAssertNotEqual(moved.sport, portA)
        XCTAssertEqual(UInt16(bigEndian: try XCTUnwrap(try h.nat.lookup(keyA)).port), moved.sport)
    }

    func testAChangedNodeAddressMovesMappingsToIt() throws {
        let h = try NATHarness()
        let syn = IPv4Packet.tcp(H.pod, H.world, sport: 41000, dport: 443)
        XCTAssertEqual(ParsedIPv4(try h.egress(syn).frame)?.source, H.node)
        try NATDatapathConfig(datapath: h.datapath).enable(
            address: IPAddress("172.31.9.9")!, ports: 32768...65535, ifindex: 0)
        XCTAssertEqual(ParsedIPv4(try h.egress(syn).frame)?.source, "172.31.9.9")
    }
}
