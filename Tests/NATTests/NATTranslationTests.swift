import DatapathCore
import XCTest

@testable import NAT

/// to_netdev and from_netdev on real packets (BPF_PROG_TEST_RUN): what is translated, how, and that checksums
/// verify afterwards when recomputed from scratch.
final class NATTranslationTests: XCTestCase {
    typealias H = NATHarness

    func testTCPSynLeavesWithNodeAddressAPortOfTheRangeAndValidChecksums() throws {
        let h = try NATHarness()
        let syn = IPv4Packet.tcp(H.pod, H.world, sport: 41000, dport: 443)
        let (verdict, frame) = try h.egress(syn)
        XCTAssertEqual(verdict, TC_ACT_OK)
        let out = try XCTUnwrap(ParsedIPv4(frame))
        XCTAssertEqual(out.source, H.node)
        XCTAssertEqual(out.destination, H.world)
        XCTAssertEqual(out.dport, 443)
        XCTAssertTrue((32768...65535).contains(out.sport), "translated port \(out.sport) outside the range")
        XCTAssertTrue(out.ipChecksumValid, "IPv4 header checksum")
        XCTAssertEqual(out.l4ChecksumValid, true, "TCP checksum")
        XCTAssertEqual(frame.count, syn.bytes.count)
    }

    func testReplyIsTranslatedBackToThePod() throws {
        let h = try NATHarness()
        let out = try XCTUnwrap(ParsedIPv4(h.egress(.tcp(H.pod, H.world, sport: 41000, dport: 443)).frame))
        let synAck = IPv4Packet.tcp(
            H.world, H.node, sport: 443, dport: out.sport, flags: IPv4Packet.syn | IPv4Packet.ack)
        let (verdict, frame) = try h.ingress(synAck)
        XCTAssertEqual(verdict, TC_ACT_OK)
        let back = try XCTUnwrap(ParsedIPv4(frame))
        XCTAssertEqual(back.source, H.world)
        XCTAssertEqual(back.destination, H.pod)
        XCTAssertEqual(back.sport, 443)
        XCTAssertEqual(back.dport, 41000)
        XCTAssertTrue(back.ipChecksumValid)
        XCTAssertEqual(back.l4ChecksumValid, true)
    }

    func testBothHalvesExistAndPointAtEachOther() throws {
        let h = try NATHarness()
        let syn = IPv4Packet.tcp(H.pod, H.world, sport: 41000, dport: 443)
        let out = try XCTUnwrap(ParsedIPv4(h.egress(syn).frame))
        let entries = try h.natEntries()
        XCTAssertEqual(entries.count, 2)
        let forwardKey = NATHarness.forwardKey(syn)
        let forward = try XCTUnwrap(try h.nat.lookup(forwardKey), "forward half")
        XCTAssertEqual(IPAddress(family: .ipv4, bytes: tupleBytes(forward.addr)).description, H.node)
        XCTAssertEqual(UInt16(bigEndian: forward.port), out.sport)
        let reverseKey = NATHalves.reverseKey(forward: forwardKey, entry: forward)
        XCTAssertEqual(reverseKey.direction, UInt8(NA_DIR_INGRESS.rawValue))
        let reverse = try XCTUnwrap(try h.nat.lookup(reverseKey), "reverse half")
        XCTAssertEqual(IPAddress(family: .ipv4, bytes: tupleBytes(reverse.addr)).description, H.pod)
        XCTAssertEqual(UInt16(bigEndian: reverse.port), 41000)
        XCTAssertEqual(forward.lifetime, reverse.lifetime)
        XCTAssertEqual(forward.created, reverse.created)
        let now = MonotonicClock.seconds()
        XCTAssertTrue((now...now + 61).contains(forward.lifetime), "a SYN gets the SYN lifetime (60 s)")
    }

    func testExistingMappingIsReusedAndRefreshed() throws {
        let h = try NATHarness()
        let first = try XCTUnwrap(ParsedIPv4(h.egress(.tcp(H.pod, H.world, sport: 41000, dport: 443)).frame))
        let synAck = IPv4Packet.tcp(
            H.world, H.node, sport: 443, dport: first.sport, flags: IPv4Packet.syn | IPv4Packet.ack)
        _ = try h.ingress(synAck)
        let ack = IPv4Packet.tcp(H.pod, H.world, sport: 41000, dport: 443, flags: IPv4Packet.ack)
        let second = try XCTUnwrap(ParsedIPv4(h.egress(ack).frame))
        XCTAssertEqual(second.sport, first.sport, "same flow, same translated port")
        XCTAssertEqual(try h.natEntries().count, 2, "no second mapping")
        let forward = try XCTUnwrap(try h.nat.lookup(NATHarness.forwardKey(ack)))
        XCTAssertEqual(NATMapping.stateName(proto: 6, flags: forward.flags), "established")
        XCTAssertGreaterThan(forward.lifetime, MonotonicClock.seconds() + 7000, "established TCP lifetime")
    }

    func testFlowsToTheSameDestinationGetDistinctPorts() throws {
        let h = try NATHarness()
        var ports = Set<UInt16>()
        for sport in UInt16(40000)..<40200 {
            let out = try XCTUnwrap(ParsedIPv4(h.egress(.tcp(H.pod, H.world, sport: sport, dport: 80)).frame))
            ports.insert(out.sport)
        }
        XCTAssertEqual(ports.count, 200)
        XCTAssertEqual(try h.natEntries().count, 400)
    }

    func testUDPTranslatesBothWaysAndAZeroChecksumStaysZero() throws {
        let h = try NATHarness()
        let checked = try XCTUnwrap(ParsedIPv4(h.egress(.udp(H.pod, H.world, sport: 5353, dport: 53)).frame))
        XCTAssertEqual(checked.source, H.node)
        XCTAssertEqual(checked.l4ChecksumValid, true)
        XCTAssertNotEqual(checked.udpChecksum, 0)

        let unchecked = try XCTUnwrap(
            ParsedIPv4(h.egress(.udp(H.pod, H.world, sport: 5354, dport: 53, checksum: false)).frame))
        XCTAssertEqual(unchecked.source, H.node)
        XCTAssertEqual(unchecked.udpChecksum, 0, "no checksum stays no checksum")

        let reply = try XCTUnwrap(
            ParsedIPv4(h.ingress(.udp(H.world, H.node, sport: 53, dport: checked.sport)).frame))
        XCTAssertEqual(reply.destination, H.pod)
        XCTAssertEqual(reply.dport, 5353)
        XCTAssertEqual(reply.l4ChecksumValid, true)
    }

    func testICMPEchoIdIsTranslatedAndRestored() throws {
        let h = try NATHarness()
        let request = IPv4Packet(source: H.pod, destination: H.world, transport: .icmpEcho(id: 7, reply: false))
        let out = try XCTUnwrap(ParsedIPv4(h.egress(request).frame))
        XCTAssertEqual(out.source, H.node)
        XCTAssertTrue((32768...65535).contains(out.sport), "echo id \(out.sport) from the range")
        XCTAssertEqual(out.l4ChecksumValid, true)
        XCTAssertTrue(out.ipChecksumValid)

        let reply = IPv4Packet(source: H.world, destination: H.node, transport: .icmpEcho(id: out.sport, reply: true))
        let back = try XCTUnwrap(ParsedIPv4(h.ingress(reply).frame))
        XCTAssertEqual(back.destination, H.pod)
        XCTAssertEqual(back.dport, 7)
        XCTAssertEqual(back.l4ChecksumValid, true)
    }

    func testFragmentsFollowTheirFirstFragmentBothWays() throws {
        let h = try NATHarness()
        var first = IPv4Packet.udp(H.pod, H.world, sport: 6000, dport: 9000)
        first.moreFragments = true
        first.payload = [UInt8](repeating: 0xab, count: 16)
        var later = first
        later.moreFragments = false
        later.fragmentOffset = 3  // 24 bytes: after the UDP header and its 16 payload bytes
        let out = try XCTUnwrap(ParsedIPv4(h.egress(first).frame))
        XCTAssertEqual(out.source, H.node)
        let laterOut = try XCTUnwrap(ParsedIPv4(h.egress(later).frame))
        XCTAssertEqual(laterOut.source, H.node, "a later fragment leaves with the node's address too")
        XCTAssertTrue(laterOut.ipChecksumValid)

        var replyFirst = IPv4Packet.udp(H.world, H.node, sport: 9000, dport: out.sport)
        replyFirst.moreFragments = true
        replyFirst.ipID = 0x4321
        replyFirst.payload = [UInt8](repeating: 0xcd, count: 16)
        var replyLater = replyFirst
        replyLater.moreFragments = false
        replyLater.fragmentOffset = 3
        XCTAssertEqual(ParsedIPv4(try h.ingress(replyFirst).frame)?.destination, H.pod)
        let back = try XCTUnwrap(ParsedIPv4(h.ingress(replyLater).frame))
        XCTAssertEqual(back.destination, H.pod, "a later reply fragment goes to the pod as well")
        XCTAssertTrue(back.ipChecksumValid)
    }
}
