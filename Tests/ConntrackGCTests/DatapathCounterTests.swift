import ConntrackGC
import DatapathCore
import XCTest

/// The endpoint program with the creation counter passes the verifier, counts each created entry once and stamps
/// the lifetimes the plugin wrote.
final class DatapathCounterTests: XCTestCase {
    /// Ethernet + IPv4 + UDP from `source`, ports 1234 → 53.
    private func udpPacket(from source: [UInt8], to destination: [UInt8], sourcePort: UInt16 = 1234) -> [UInt8] {
        let payload = [UInt8](repeating: 0x61, count: 18)
        let udpLength = 8 + payload.count
        let totalLength = 20 + udpLength
        var packet: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]
        packet += [0x45, 0, UInt8(totalLength >> 8), UInt8(totalLength & 0xff), 0, 1, 0, 0, 64, 17, 0, 0]
        packet += source + destination
        packet += [
            UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), 0, 53, UInt8(udpLength >> 8), UInt8(udpLength & 0xff), 0,
            0,
        ]
        return packet + payload
    }

    func testProgramLoadsCountsCreationsAndStampsConfiguredLifetime() throws {
        let datapath = try loadDatapath()
        let plugin = try startedPlugin(on: datapath, options: ["non-tcp": 123])
        defer { plugin.stop() }
        // BPF_PROG_TEST_RUN runs on the loopback device (ifindex 1): make it endpoint 7's interface.
        try datapath.addEndpoint(id: 7, ifindex: 1, ipv4: "10.0.0.7")
        let program = try datapath.program("from_endpoint")
        let counter = try datapath.map("na_ct_created")
        func created() throws -> UInt64 {
            let bytes = try XCTUnwrap(try counter.lookup(key: [0, 0, 0, 0]))
            return (0..<counter.valueCount).reduce(0) { $0 + (valueFrom(bytes, at: $1 * 8) as UInt64) }
        }
        XCTAssertEqual(try created(), 0)

        let before = MonotonicClock.seconds()
        let first = try program.testRun(packet: udpPacket(from: [10, 0, 0, 7], to: [10, 0, 1, 1]))
        XCTAssertEqual(first.retval, 0, "TC_ACT_OK")
        XCTAssertEqual(try created(), 1)
        // The same flow again is established: no new entry, no count.
        XCTAssertEqual(try program.testRun(packet: udpPacket(from: [10, 0, 0, 7], to: [10, 0, 1, 1])).retval, 0)
        XCTAssertEqual(try created(), 1)
        XCTAssertEqual(
            try program.testRun(packet: udpPacket(from: [10, 0, 0, 7], to: [10, 0, 1, 1], sourcePort: 99)).retval, 0)
        XCTAssertEqual(try created(), 2)
        // A spoofed source is dropped before conntrack: nothing created.
        XCTAssertEqual(try program.testRun(packet: udpPacket(from: [10, 0, 0, 8], to: [10, 0, 1, 1])).retval, 2)
        XCTAssertEqual(try created(), 2)

        let entries = try datapath.conntrack().entries()
        XCTAssertEqual(entries.count, 2)
        for (_, value) in entries {
            XCTAssertEqual(value.ep_id, 7)
            XCTAssertTrue((before + 123...MonotonicClock.seconds() + 123).contains(value.lifetime), "\(value.lifetime)")
        }
        XCTAssertEqual(plugin.status()["runs"], 0)
        XCTAssertTrue(plugin.checkPressure())  // first probe: baseline sweep, nothing to delete
        XCTAssertEqual(plugin.estimatedEntries(), 2)
        XCTAssertEqual(try program.testRun(packet: udpPacket(from: [10, 0, 0, 7], to: [10, 0, 1, 2])).retval, 0)
        XCTAssertEqual(plugin.estimatedEntries(), 3)
    }
}
