import CNodeABI
import Glibc
import XCTest

@testable import DatapathCore

/// `TypedMap.forEachEntry` over real maps: every entry once, as `entries()` gives it, across batches and on a map
/// type without batch lookups.
final class TypedMapTests: XCTestCase {
    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("creating BPF maps needs root") }
    }

    private func key(_ index: UInt32) -> na_policy_key {
        na_policy_key(
            prefixlen: UInt32(NA_POLICY_PREFIX_PORT), identity: (1000 + index).bigEndian, direction: 1, protocol: 6,
            dport: UInt16(80 + index % 7).bigEndian)
    }

    private func assertEveryEntryOnce(_ type: BPFMapType, flags: UInt32 = 0) throws {
        let raw = try BPFMap.create(
            type: type, name: "na_tm_test", keySize: MemoryLayout<na_policy_key>.size,
            valueSize: MemoryLayout<na_policy_value>.size, maxEntries: 2000, flags: flags)
        let map = try TypedMap<na_policy_key, na_policy_value>(raw)
        for index in 0..<UInt32(1300) { try map.update(key(index), na_policy_value(rule_id: index, flags: index % 2)) }
        var seen: [UInt32: UInt32] = [:]
        try map.forEachEntry(batchSize: 512) { key, value in
            XCTAssertNil(seen.updateValue(value.rule_id, forKey: UInt32(bigEndian: key.identity)), "visited twice")
            XCTAssertEqual(value.flags, value.rule_id % 2)
        }
        XCTAssertEqual(seen.count, 1300)
        XCTAssertTrue(seen.allSatisfy { $0.key == 1000 + $0.value })
        XCTAssertEqual(seen.count, try map.entries().count)
    }

    func testEveryEntryOnceAcrossBatches() throws {
        try assertEveryEntryOnce(.hash)
    }

    func testEveryEntryOnceWithoutBatchLookups() throws {
        try assertEveryEntryOnce(.lpmTrie, flags: InnerMapTemplate.noPrealloc)
    }
}
