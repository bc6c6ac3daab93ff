import DatapathCore
import Foundation
import XCTest

@testable import IPAMClusterPool

final class LedgerTests: XCTestCase {
    func testARestartRestoresAllocationsAndContinuesRoundRobin() throws {
        let directory = try temporaryDirectory(self)
        var ipam: IPAM? = try readyIPAM(v4Node, directory: directory)
        for index in 0..<5 { _ = try ipam!.allocate(families: [.ipv4], owner: "ns/p\(index)", expiring: false) }
        _ = try ipam!.release(ip("10.0.1.3"))
        _ = try ipam!.claim(ip("10.0.1.100"), owner: "ns/fixed", expiring: false)
        let before = try ipam!.listing().allocations
        ipam = nil
        ipam = try readyIPAM(v4Node, directory: directory)
        XCTAssertEqual(try ipam!.listing().allocations, before)
        XCTAssertEqual(
            try ipam!.allocate(families: [.ipv4], owner: "next", expiring: false)[0].address, ip("10.0.1.7"),
            "the cursor survives: the released .3 is not reused first")
    }

    func testATornLastRecordIsDroppedAndTheLogStaysAppendable() throws {
        let directory = try temporaryDirectory(self)
        var ipam: IPAM? = try readyIPAM(v4Node, directory: directory)
        _ = try ipam!.allocate(families: [.ipv4], owner: "a", expiring: false)
        ipam = nil
        // A crash in the middle of writing the next record (it was never acknowledged).
        let line = Ledger.recordLine(
            sequence: 2, change: LedgerChange(put: [Allocation(address: ip("10.0.1.3"), owner: "b", allocatedAtMs: 1)]))
        try append(Array(line.prefix(line.count / 2)), to: "\(directory)/\(Ledger.logName)")

        ipam = try readyIPAM(v4Node, directory: directory)
        XCTAssertEqual(try ipam!.listing().allocations.map(\.address), [ip("10.0.1.2")])
        XCTAssertEqual(try ipam!.allocate(families: [.ipv4], owner: "c", expiring: false)[0].address, ip("10.0.1.3"))
        ipam = nil
        ipam = try readyIPAM(v4Node, directory: directory)
        XCTAssertEqual(try ipam!.listing().allocations.map(\.owner), ["a", "c"])
    }

    func testDamageBeforeIntactRecordsRefusesToStart() throws {
        let directory = try temporaryDirectory(self)
        var ipam: IPAM? = try readyIPAM(v4Node, directory: directory)
        for owner in ["a", "b", "c"] { _ = try ipam!.allocate(families: [.ipv4], owner: owner, expiring: false) }
        ipam = nil
        let path = "\(directory)/\(Ledger.logName)"
        var bytes = try XCTUnwrap(FileManager.default.contents(atPath: path))
        let secondLine = try XCTUnwrap(bytes.firstIndex(of: UInt8(ascii: "\n"))) + 20
        bytes[secondLine] ^= 0x20
        try bytes.write(to: URL(fileURLWithPath: path))

        let broken = IPAM(config: try config(v4Node))
        let error = try XCTUnwrap(agentError { try broken.load(directory: directory) })
        XCTAssertTrue(error.message.contains("damaged at line 2 (checksum mismatch)"), error.message)
        XCTAssertEqual(broken.phase, .failed(error.message))
        XCTAssertEqual(agentError { try broken.listing() }?.status, 503)
    }

    func testCompactionWritesASnapshotAndKeepsTheLogShort() throws {
        let directory = try temporaryDirectory(self)
        var ipam: IPAM? = try readyIPAM(v4Node, directory: directory, compactAfter: 10)
        var held: [IPAddress] = []
        for index in 0..<45 {
            if index % 3 == 2 {
                _ = try ipam!.release(held.removeFirst())
            } else {
                held.append(try ipam!.allocate(families: [.ipv4], owner: "p\(index)", expiring: false)[0].address)
            }
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(directory)/\(Ledger.snapshotName)"))
        let logLines = try String(contentsOfFile: "\(directory)/\(Ledger.logName)", encoding: .utf8)
            .split(separator: "\n").count
        XCTAssertLessThan(logLines, 10)
        XCTAssertEqual(ipam!.status()["ledger"]?["sequence"], 45)
        let before = try ipam!.listing().allocations
        XCTAssertEqual(before.map(\.address), held.sorted())
        ipam = nil
        ipam = try readyIPAM(v4Node, directory: directory, compactAfter: 10)
        XCTAssertEqual(try ipam!.listing().allocations, before)
    }

    func testACrashBetweenSnapshotAndEmptyingTheLogReplaysNothingTwice() throws {
        let directory = try temporaryDirectory(self)
        let logPath = "\(directory)/\(Ledger.logName)"
        var ipam: IPAM? = try readyIPAM(v4Node, directory: directory, compactAfter: 4)
        let a = try ipam!.allocate(families: [.ipv4], owner: "a", expiring: false)[0].address
        _ = try ipam!.release(a)
        _ = try ipam!.claim(a, owner: "b", expiring: false)
        // The log as it was just before the fourth record triggers compaction.
        let oldLog = try XCTUnwrap(FileManager.default.contents(atPath: logPath))
        _ = try ipam!.release(a)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: logPath)).count, 0, "compacted")
        ipam = nil
        // Put the first three records back, as if the log had not been emptied; then the fourth on top.
        let fourth = Ledger.recordLine(sequence: 4, change: LedgerChange(release: [a]))
        try (oldLog + Data(fourth)).write(to: URL(fileURLWithPath: logPath))

        ipam = try readyIPAM(v4Node, directory: directory, compactAfter: 4)
        XCTAssertEqual(try ipam!.listing().allocations, [], "records covered by the snapshot are skipped")
    }

    func testThePodAttributeSurvivesARestart() throws {
        let directory = try temporaryDirectory(self)
        var ipam: IPAM? = try readyIPAM(v4Node, directory: directory)
        let allocated = try ipam!.allocate(families: [.ipv4], owner: "c0ffee", pod: "web/frontend", expiring: false)
        XCTAssertEqual(allocated.map(\.pod), ["web/frontend"])
        ipam = nil
        ipam = try readyIPAM(v4Node, directory: directory)
        let restored = try ipam!.listing().allocations
        XCTAssertEqual(restored.map(\.owner), ["c0ffee"])
        XCTAssertEqual(restored.map(\.pod), ["web/frontend"])
    }

    /// A log written before allocations carried `pod` (owner `namespace/pod`) restores as it was.
    func testALedgerWrittenBeforeThePodAttributeRestores() throws {
        let directory = try temporaryDirectory(self)
        let json = #"{"put":[{"allocated-at-ms":1,"ip":"10.0.1.2","owner":"web/frontend"}],"seq":1}"#
        let hex = String(CRC32.checksum(Array(json.utf8)), radix: 16)
        let line = String(repeating: "0", count: 8 - hex.count) + hex + " " + json + "\n"
        try line.write(toFile: "\(directory)/\(Ledger.logName)", atomically: true, encoding: .utf8)

        let ipam = try readyIPAM(v4Node, directory: directory)
        let restored = try ipam.listing().allocations
        XCTAssertEqual(restored.map(\.address), [ip("10.0.1.2")])
        XCTAssertEqual(restored.map(\.owner), ["web/frontend"])
        XCTAssertEqual(restored.map(\.pod), [nil])
        let response = IPAMResponses.allocation(restored[0], now: 0)
        XCTAssertEqual(response["owner"]?.stringValue, "web/frontend")
        XCTAssertNil(response["pod"])
    }

    func testAThousandAllocationsStayFast() throws {
        let directory = try temporaryDirectory(self)
        let ipam = try readyIPAM(#"{"pod-cidr-ipv4": "10.1.0.0/20"}"#, directory: directory)
        let started = ContinuousClock.now
        for index in 0..<1000 { _ = try ipam.allocate(families: [.ipv4], owner: "ns/p\(index)", expiring: false) }
        let elapsed = ContinuousClock.now - started
        print("1000 durable allocations took \(elapsed)")
        // One fdatasync of one small record each (about 5 ms on the test machine): rewriting the whole ledger
        // each time would cost tens of milliseconds per allocation by the end.
        XCTAssertLessThan(elapsed, .seconds(30))
        XCTAssertEqual(try ipam.listing().families.first?.allocated, 1000)
        let logSize = try XCTUnwrap(
            try FileManager.default.attributesOfItem(atPath: "\(directory)/\(Ledger.logName)")[.size] as? Int)
        XCTAssertLessThan(logSize, 1000 * 200, "each record is small, whatever the ledger's size")
    }

    private func append(_ bytes: [UInt8], to path: String) throws {
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(bytes))
        try handle.close()
    }
}
