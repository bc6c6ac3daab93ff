import CNodeABI
import DatapathCore
import Foundation
import XCTest

/// Restarting over maps pinned by an earlier version: maps of the same shape are reused, a map whose layout changed
/// (na_ct_value grew) is replaced instead of failing the load.
final class PinnedMapUpgradeTests: XCTestCase {
    private var root = ""

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
        root = "/sys/fs/bpf/na-test-\(String(UInt16.random(in: 0...UInt16.max), radix: 16))-pins"
    }

    override func tearDown() {
        if !root.isEmpty { BPFFS.removeAll(root: root) }
    }

    func testAPinnedMapOfAnOlderLayoutIsReplacedAndOthersReused() throws {
        try BPFFS.prepare(root: root)
        // What the previous version pinned: conntrack values of 40 bytes, and an ipcache of the current shape.
        let oldConntrack = try BPFMap.create(
            type: .lruHash, name: "na_ct", keySize: MemoryLayout<na_ct_key>.size, valueSize: 40, maxEntries: 4096)
        try oldConntrack.pin(at: "\(root)/na_ct")
        let sizes: [String: UInt32] = ["na_ct": 4096, "na_ipcache": 1024]
        let first = try Datapath(root: root, maxEntries: sizes)
        XCTAssertEqual(first.object.replacedPins, ["na_ct"])
        let conntrack = try first.map("na_ct")
        XCTAssertEqual(conntrack.info.valueSize, MemoryLayout<na_ct_value>.size)
        XCTAssertNotEqual(conntrack.info.id, oldConntrack.info.id)
        XCTAssertEqual(try BPFMap.openPinned("\(root)/na_ct")?.info.id, conntrack.info.id, "the new map is pinned")

        let second = try Datapath(root: root, maxEntries: sizes)
        XCTAssertEqual(second.object.replacedPins, [], "pins of the same shape are reused")
        XCTAssertEqual(try second.map("na_ct").info.id, conntrack.info.id)
        XCTAssertEqual(try second.map("na_ipcache").info.id, try first.map("na_ipcache").info.id)

        // Another size asked for is another shape too.
        let third = try Datapath(root: root, maxEntries: ["na_ct": 8192, "na_ipcache": 1024])
        XCTAssertEqual(third.object.replacedPins, ["na_ct"])
        XCTAssertEqual(try third.map("na_ct").info.maxEntries, 8192)
    }
}
