import CNodeABI
import DatapathCore
import XCTest

/// Runs the fixture tables through the endpoint programs with BPF_PROG_TEST_RUN. Every step checks the
/// verdict, that na_metrics counted exactly this packet under (reason, direction), and the flow events.
final class EndpointProgramTests: XCTestCase {
    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
    }

    func testPolicyFixtures() throws { try run(policyFixtures) }
    func testParsingFixtures() throws { try run(parsingFixtures) }
    func testConntrackFixtures() throws { try run(conntrackFixtures) }
    func testEventFixtures() throws { try run(eventFixtures) }
    func testPrefixFixtures() throws { try run(prefixFixtures) }
    func testICMPErrorFixtures() throws { try run(icmpErrorFixtures) }
    func testNeighborDiscoveryFixtures() throws { try run(ndFixtures) }
    func testRevocationFixtures() throws { try run(revocationFixtures) }
    func testHostTrafficFixtures() throws { try run(hostTrafficFixtures) }
    func testIPCacheHostFixtures() throws { try run(ipcacheHostFixtures) }
    func testPolicyExactFixtures() throws { try run(policyExactFixtures) }

    /// The same verdicts with every policy key in the trie, as pinned by an agent that had no hash.
    func testPolicyFixturesWithFullLengthKeysInTheTrie() throws {
        DatapathHarness.exactPoliciesInHash = false
        defer { DatapathHarness.exactPoliciesInHash = true }
        try run(policyFixtures + policyExactFixtures)
    }

    /// The kernel refuses test packets shorter than an Ethernet header (bpf_test_init: size < ETH_HLEN is
    /// EINVAL), and untagged IPv4/IPv6 frames shorter than their IP header (bpf_prog_test_run_skb), so those
    /// truncations cannot reach the program through BPF_PROG_TEST_RUN; the fixtures truncate behind a VLAN tag.
    func testTruncatedHeadersTheKernelRefusesToTestRun() throws {
        let h = try DatapathHarness.shared()
        let program = Program.fromEndpoint.rawValue
        XCTAssertThrowsError(try h.run(program, Array(Packet.arpRequest.bytes.prefix(10))))
        XCTAssertThrowsError(try h.run(program, Packet.tcp(Net.ep4, Net.peer4, dport: 80).truncated(to: 26)))
        XCTAssertThrowsError(try h.run(program, Packet.tcp(Net.ep6, Net.peer6, dport: 80).truncated(to: 40)))
    }

    /// A full ring buffer loses events; the loss is counted, never silent.
    func testLostEventsAreCounted() throws {
        let h = try DatapathHarness.shared()
        try h.reset()
        try Setup().apply(to: h)
        let before = try h.eventCounters()
        let runs: UInt32 = 20000  // 88-byte records: a 1 MiB ring holds about 11900
        let drop = Packet.tcp(Net.ep4, Net.peer4, dport: 80).bytes
        let result = try h.program(Program.fromEndpoint.rawValue).testRun(packet: drop, repeat: runs)
        XCTAssertEqual(result.retval, Verdict.TC_ACT_SHOT)
        let after = try h.eventCounters()
        let read = try h.drainEvents()
        XCTAssertEqual(after.emitted - before.emitted, UInt64(read.count))
        XCTAssertGreaterThan(after.lost - before.lost, 0)
        XCTAssertEqual(after.emitted - before.emitted + after.lost - before.lost, UInt64(runs))
    }

    private func run(_ fixtures: [Fixture], file: StaticString = #filePath, line: UInt = #line) throws {
        let h = try DatapathHarness.shared()
        for fixture in fixtures {
            try h.reset()
            try fixture.setup.apply(to: h)
            for (index, step) in fixture.steps.enumerated() {
                try runStep(step, of: fixture, "\(fixture.description) [step \(index + 1)]", h)
            }
        }
    }

    private func runStep(_ step: Step, of fixture: Fixture, _ name: String, _ h: DatapathHarness) throws {
        try step.before?.apply(h)
        let reason = step.expect.reason
        let metricBefore = try h.metric(reason: reason, direction: step.program.direction)
        let countersBefore = try h.eventCounters()

        let retval: UInt32
        do {
            retval = try h.run(step.program.rawValue, step.packet)
        } catch {
            XCTFail("\(name): \(error)")
            return
        }

        let metricAfter = try h.metric(reason: reason, direction: step.program.direction)
        let counters = try h.eventCounters()
        let events = try h.drainEvents()
        let got = retval == Verdict.TC_ACT_OK ? "pass" : "drop"
        XCTAssertEqual(retval, step.expect.retval, "\(name): expected \(step.expect), got \(got)")
        XCTAssertEqual(metricAfter.packets - metricBefore.packets, 1, "\(name): packets under reason \(reason)")
        XCTAssertEqual(
            metricAfter.bytes - metricBefore.bytes, UInt64(step.packet.count), "\(name): bytes under reason \(reason)")

        let expectedEvents = step.events ?? (step.expect.isPass ? 0 : 1)
        XCTAssertEqual(events.count, expectedEvents, "\(name): flow events")
        XCTAssertEqual(counters.emitted - countersBefore.emitted, UInt64(events.count), "\(name): emitted counter")
        XCTAssertEqual(counters.lost, countersBefore.lost, "\(name): lost events")
        if !step.expect.isPass, let event = events.first {
            XCTAssertEqual(UInt32(event.reason), reason, "\(name): event reason")
            XCTAssertEqual(UInt32(event.direction), step.program.direction, "\(name): event direction")
            XCTAssertEqual(event.length, UInt32(step.packet.count), "\(name): event length")
        }
        try step.check?(h, events)
    }
}
