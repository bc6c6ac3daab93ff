import CNodeABI
import Glibc
import Synchronization
import XCTest

@testable import DatapathCore

/// The ring buffer reader and flow-event accounting against the real datapath object (loaded unpinned), fed by
/// BPF_PROG_TEST_RUN: a UDP packet on an interface without an endpoint is dropped (no endpoint configuration) and
/// reported as a flow event.
final class RingBufferReaderTests: XCTestCase {
    private func loadDatapath() throws -> Datapath {
        try XCTSkipUnless(getuid() == 0, "loading BPF programs needs root")
        return try Datapath(unpinned: "endpoint")
    }

    /// Ethernet + IPv4 + UDP from 10.1.2.3:4000 to 10.9.8.7:53 with `payload` bytes.
    private func udpPacket(payload: Int = 10) -> [UInt8] {
        var frame: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00]
        let total = 20 + 8 + payload
        frame += [
            0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 1, 2, 3, 10, 9, 8, 7,
        ]
        frame += [0x0F, 0xA0, 0x00, 0x35, UInt8((8 + payload) >> 8), UInt8((8 + payload) & 0xFF), 0, 0]
        return frame + [UInt8](repeating: 0x61, count: payload)
    }

    func testReaderDeliversEventsAndStopsPromptly() throws {
        let datapath = try loadDatapath()
        let received = Mutex<[[UInt8]]>([])
        let reader = RingBufferReader(map: try datapath.map("na_events"), pollTimeout: .milliseconds(100)) { records in
            received.withLock { $0 += records.map { Array($0) } }
        }
        try reader.start()
        try reader.start()  // a second start does nothing

        let program = try datapath.program("from_endpoint")
        for _ in 0..<3 {
            XCTAssertEqual(try program.testRun(packet: udpPacket(), ifindex: 1).retval, 2, "dropped (TC_ACT_SHOT)")
        }
        let deadline = Date() + 2
        while received.withLock({ $0.count }) < 3 && Date() < deadline { usleep(10_000) }
        let records = received.withLock { $0 }
        XCTAssertEqual(records.count, 3)
        XCTAssertEqual(reader.recordsRead, 3)
        for record in records {
            XCTAssertGreaterThanOrEqual(record.count, MemoryLayout<na_flow_event>.size)
            let event: na_flow_event = valueFrom(record, at: 0)
            XCTAssertEqual(event.reason, UInt16(NA_DROP_NO_CONFIG.rawValue))
            XCTAssertEqual(event.verdict, UInt8(NA_VERDICT_DROPPED.rawValue))
            XCTAssertEqual(event.direction, UInt8(NA_DIR_EGRESS.rawValue))
            XCTAssertEqual(event.proto, 17)
            XCTAssertEqual(event.family, UInt8(NA_FAMILY_IPV4))
            XCTAssertEqual(Array(tupleBytes(event.saddr).prefix(4)), [10, 1, 2, 3])
            XCTAssertEqual(Array(tupleBytes(event.daddr).prefix(4)), [10, 9, 8, 7])
            XCTAssertEqual(UInt16(bigEndian: event.sport), 4000)
            XCTAssertEqual(UInt16(bigEndian: event.dport), 53)
            XCTAssertEqual(event.length, UInt32(udpPacket().count))
            XCTAssertEqual(event.ifindex, 1)
        }
        let times = records.map { (valueFrom($0, at: 0) as na_flow_event).timestamp_ns }
        XCTAssertEqual(times, times.sorted(), "in ring order")

        let stats = try datapath.flowEventStats()
        XCTAssertEqual(stats, FlowEventStats(emitted: 3, lost: 0))

        let started = ContinuousClock.now
        reader.stop()
        XCTAssertLessThan(ContinuousClock.now - started, .milliseconds(500), "stop waits at most about one poll")
        reader.stop()  // idempotent
        XCTAssertEqual(try program.testRun(packet: udpPacket(), ifindex: 1).retval, 2)
        usleep(200_000)
        XCTAssertEqual(received.withLock { $0.count }, 3, "nothing is delivered after stop")
    }

    func testRefusesMapsThatAreNotRingBuffers() throws {
        let datapath = try loadDatapath()
        let reader = RingBufferReader(map: try datapath.map("na_ct")) { _ in }
        XCTAssertThrowsError(try reader.start()) { error in
            XCTAssertEqual((error as? AgentError)?.message, "map na_ct is a lru_hash map, not a ring buffer")
        }
    }

    func testFullRingCountsLostEvents() throws {
        try XCTSkipUnless(getuid() == 0, "loading BPF programs needs root")
        // The smallest ring the kernel allows is one page: 4096 bytes hold about 40 events with their headers.
        let datapath = try Datapath(unpinned: "endpoint", maxEntries: ["na_events": 4096])
        let program = try datapath.program("from_endpoint")
        _ = try program.testRun(packet: udpPacket(), repeat: 200, ifindex: 1)
        let stats = try datapath.flowEventStats()
        XCTAssertEqual(stats.emitted + stats.lost, 200)
        XCTAssertGreaterThan(stats.lost, 0, "nobody reads: the ring fills up")
        XCTAssertLessThan(stats.emitted, 200)

        // Reading frees the ring again: the reader gets exactly what was emitted.
        let received = Mutex(0)
        let reader = RingBufferReader(map: try datapath.map("na_events")) { records in
            received.withLock { $0 += records.count }
        }
        try reader.start()
        let deadline = Date() + 2
        while received.withLock({ $0 }) < Int(stats.emitted) && Date() < deadline { usleep(10_000) }
        reader.stop()
        XCTAssertEqual(received.withLock { $0 }, Int(stats.emitted))
    }

    func testCountEntriesMatchesAKeyWalk() throws {
        try XCTSkipUnless(getuid() == 0, "creating BPF maps needs root")
        let hash = try BPFMap.create(type: .hash, name: "na_test_count", keySize: 4, valueSize: 8, maxEntries: 20_000)
        let typed = try TypedMap<UInt32, UInt64>(hash)
        for key in 0..<UInt32(10_001) { try typed.update(key, UInt64(key)) }
        XCTAssertEqual(try hash.countEntries(batchSize: 1000), 10_001)
        XCTAssertEqual(try hash.countEntries(), 10_001)

        let perCPU = try BPFMap.create(
            type: .perCPUHash, name: "na_test_pcpu", keySize: 4, valueSize: 16, maxEntries: 64)
        let typedPerCPU = try TypedMap<UInt32, na_metrics_value>(perCPU)
        for key in 0..<UInt32(7) { try typedPerCPU.update(key, na_metrics_value(packets: 1, bytes: 2)) }
        XCTAssertEqual(try perCPU.countEntries(batchSize: 3), 7)

        // LPM tries have no batch lookup: counted key by key.
        let trie = try BPFMap.create(
            type: .lpmTrie, name: "na_test_lpm", keySize: 8, valueSize: 4, maxEntries: 100, flags: 1)
        for i in 0..<UInt32(5) {
            var key = [UInt8](repeating: 0, count: 8)
            key[0] = 32
            key[4] = 10
            key[7] = UInt8(i)
            try trie.update(key: key, value: [0, 0, 0, 0])
        }
        XCTAssertEqual(try trie.countEntries(), 5)

        let empty = try BPFMap.create(type: .hash, name: "na_test_empty", keySize: 4, valueSize: 4, maxEntries: 8)
        XCTAssertEqual(try empty.countEntries(), 0)
    }
}
