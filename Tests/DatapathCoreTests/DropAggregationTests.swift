import CNodeABI
import DatapathCore
import XCTest

/// Drop events are aggregated per flow in the kernel: a flood of denied packets gives one event per flow and
/// interval, while the metrics count every packet.
final class DropAggregationTests: XCTestCase {
    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
    }

    private func setUp(intervalMS: UInt32) throws -> DatapathHarness {
        let h = try DatapathHarness.shared()
        try h.reset()
        var config = configured(flags: UInt32(NA_CFG_EVENTS_DROPPED))
        config.drop_event_interval_ms = intervalMS
        try Setup(config: config).apply(to: h)
        return h
    }

    private func dropped(_ h: DatapathHarness) throws -> UInt64 {
        try h.metric(reason: NA_DROP_POLICY.rawValue, direction: NA_DIR_EGRESS.rawValue).packets
    }

    func testFloodOfOneFlowGivesOneEventAndExactCounts() throws {
        let h = try setUp(intervalMS: 60_000)
        let before = try dropped(h)
        let packet = Packet.udp(Net.ep4, Net.peer4, sport: 40000, dport: 9999).bytes
        let result = try h.program(Program.fromEndpoint.rawValue).testRun(packet: packet, repeat: 100_000)
        XCTAssertEqual(result.retval, Verdict.TC_ACT_SHOT)
        XCTAssertEqual(try dropped(h) - before, 100_000, "every dropped packet is counted")
        let events = try h.drainEvents()
        XCTAssertEqual(events.count, 1, "one event for the flow within the interval")
        XCTAssertEqual(UInt32(try XCTUnwrap(events.first).reason), NA_DROP_POLICY.rawValue)
        XCTAssertEqual(try h.dropAggregation.entries().count, 1)
    }

    func testDistinctFlowsAreEachReported() throws {
        let h = try setUp(intervalMS: 60_000)
        let program = try h.program(Program.fromEndpoint.rawValue)
        let packets =
            (0..<20).map { Packet.udp(Net.ep4, Net.peer4, sport: 40000 + UInt16($0), dport: 9999).bytes }
            + [Packet.udp(Net.ep6, Net.peer6, sport: 40000, dport: 9999).bytes]
        for packet in packets { _ = try program.testRun(packet: packet, repeat: 50) }
        let events = try h.drainEvents()
        XCTAssertEqual(events.count, packets.count, "one event per flow")
        XCTAssertEqual(Set(events.map { "\($0.family)/\(UInt16(bigEndian: $0.sport))" }).count, packets.count)
        // The same tuple in the other direction is another flow.
        _ = try h.program(Program.toEndpoint.rawValue).testRun(
            packet: Packet.udp(Net.peer4, Net.ep4, sport: 9999, dport: 40000).bytes, repeat: 50)
        XCTAssertEqual(try h.drainEvents().count, 1)
    }

    func testOnceTheIntervalPassedTheFlowIsReportedAgain() throws {
        let h = try setUp(intervalMS: 100)
        let packet = Packet.udp(Net.ep4, Net.peer4, sport: 40000, dport: 9999).bytes
        let program = try h.program(Program.fromEndpoint.rawValue)
        _ = try program.testRun(packet: packet, repeat: 1000)
        XCTAssertEqual(try h.drainEvents().count, 1)
        usleep(150_000)
        _ = try program.testRun(packet: packet, repeat: 1000)
        XCTAssertEqual(try h.drainEvents().count, 1, "a new interval, a new event")
    }

    func testIntervalZeroReportsEveryDrop() throws {
        let h = try setUp(intervalMS: 0)
        let before = try dropped(h)
        let packet = Packet.udp(Net.ep4, Net.peer4, sport: 40000, dport: 9999).bytes
        _ = try h.program(Program.fromEndpoint.rawValue).testRun(packet: packet, repeat: 500)
        XCTAssertEqual(try h.drainEvents().count, 500)
        XCTAssertEqual(try dropped(h) - before, 500)
        XCTAssertEqual(try h.dropAggregation.entries().count, 0, "nothing is remembered without an interval")
    }
}
