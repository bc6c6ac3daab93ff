import DatapathCore
import XCTest

@testable import NAT

/// Cost of translation as BPF_PROG_TEST_RUN measures it: SYNs of distinct flows (each creates a mapping, with
/// keys varying so the map is not kept hot by one entry) and packets of an existing mapping.
final class NATPerformanceTests: XCTestCase {
    typealias H = NATHarness

    func testNewMappingsAndEstablishedPacketsPerSecond() throws {
        let h = try NATHarness()
        let flows = 2000
        var totalNs: UInt64 = 0
        var ports = Set<UInt16>()
        for index in 0..<flows {
            // Vary source address and port: every SYN is a new flow.
            let source = "10.244.\(1 + index / 250).\(1 + index % 250)"
            let syn = IPv4Packet.tcp(source, H.world, sport: UInt16(20000 + index), dport: 443)
            let result = try h.toNetdev.testRun(packet: syn.bytes)
            XCTAssertEqual(result.retval, TC_ACT_OK)
            totalNs += UInt64(result.durationNs)
            ports.insert(try XCTUnwrap(ParsedIPv4(result.packetOut)).sport)
        }
        XCTAssertEqual(try h.natEntries().count, 2 * flows)
        XCTAssertEqual(ports.count, flows, "one port per flow to the same destination")
        let newNs = Double(totalNs) / Double(flows)

        // The same flows again, one run each: what a cold run of the lookup path costs, to set the above against
        // (each test run goes through a syscall, so none of them finds caches warm).
        var coldNs: UInt64 = 0
        for index in 0..<flows {
            let source = "10.244.\(1 + index / 250).\(1 + index % 250)"
            let ack = IPv4Packet.tcp(source, H.world, sport: UInt16(20000 + index), dport: 443, flags: IPv4Packet.ack)
            coldNs += UInt64(try h.toNetdev.testRun(packet: ack.bytes).durationNs)
        }
        XCTAssertEqual(try h.natEntries().count, 2 * flows, "existing flows create nothing")
        let coldHitNs = Double(coldNs) / Double(flows)

        let existing = IPv4Packet.tcp("10.244.1.1", H.world, sport: 20000, dport: 443, flags: IPv4Packet.ack)
        let established = try h.toNetdev.testRun(packet: existing.bytes, repeat: 100_000)
        XCTAssertEqual(established.retval, TC_ACT_OK)

        let untouched = IPv4Packet.tcp("192.168.0.1", H.world, sport: 20000, dport: 443, flags: IPv4Packet.ack)
        let node = try h.toNetdev.testRun(packet: untouched.bytes, repeat: 100_000)

        let reply = IPv4Packet.tcp(
            H.world, H.node, sport: 443, dport: try XCTUnwrap(ParsedIPv4(h.egress(existing).frame)).sport,
            flags: IPv4Packet.ack)
        let ingress = try h.fromNetdev.testRun(packet: reply.bytes, repeat: 100_000)
        print(
            """
            NAT cost (BPF_PROG_TEST_RUN): new mapping \(String(format: "%.0f", newNs)) ns/SYN \
            (\(String(format: "%.2f", 1e9 / newNs / 1e6)) M mappings/s on one core), \
            existing mapping \(String(format: "%.0f", coldHitNs)) ns/packet run alike, \
            established egress \(established.durationNs) ns/packet (hot), \
            reply ingress \(ingress.durationNs) ns/packet, \
            node's own traffic \(node.durationNs) ns/packet
            """)
    }
}
