import CNodeABI
import Glibc
import Synchronization
import XCTest

@testable import DatapathCore

/// How `BucketTable` reuses withdrawn entries: never before a grace period, and after one grace period that began
/// since the table's last withdrawals, however many buckets and calls need them (a policy deleted and imported again
/// is one call per endpoint).
final class BucketTableTests: XCTestCase {
    private static let buckets = 256
    private static let ways = Int(NA_IPCACHE_V4_WAYS)

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("creating BPF maps needs root") }
    }

    func testOneGracePeriodFreesEveryEntryWithdrawnBeforeIt() throws {
        let map = try BPFMap.create(
            type: .array, name: "na_bt_test", keySize: 4,
            valueSize: Self.ways * MemoryLayout<na_ipcache_v4_entry>.stride, maxEntries: Self.buckets)
        let graces = Mutex(0)
        let table = try BucketTable<na_ipcache_v4_entry>(
            map, ways: Self.ways, word: \.identity, valid: UInt32(NA_IPCACHE_V4_VALID),
            stale: UInt32(NA_IPCACHE_V4_STALE),
            gracePeriod: {
                graces.withLock { $0 += 1 }
                return true
            }, waitsSoon: false)
        func changes(_ identity: UInt32, remove: Bool = false) -> [BucketTable<na_ipcache_v4_entry>.Change] {
            (0..<UInt32(Self.buckets)).flatMap { bucket in
                (0..<UInt32(Self.ways)).map { way in
                    let address = bucket << 8 | way
                    return BucketTable.Change(
                        bucket: bucket, entry: remove ? nil : na_ipcache_v4_entry(identity: identity, addr: address),
                        matches: { $0.addr == address })
                }
            }
        }

        // Every entry of every bucket filled, then withdrawn: all stale, none free.
        XCTAssertEqual(try table.apply(changes(100)), Array(repeating: true, count: Self.buckets * Self.ways))
        try table.apply(changes(0, remove: true))
        XCTAssertEqual(graces.withLock { $0 }, 0, "nothing needed a free entry yet")
        XCTAssertTrue(try table.validEntries().isEmpty)

        // The same keys again, in two calls: each bucket needs its withdrawn entries back, and one grace period
        // serves both calls.
        let again = changes(200)
        let half = again.count / 2
        XCTAssertEqual(try table.apply(Array(again[..<half])), Array(repeating: true, count: half))
        XCTAssertEqual(graces.withLock { $0 }, 1)
        XCTAssertEqual(try table.apply(Array(again[half...])), Array(repeating: true, count: again.count - half))
        XCTAssertEqual(graces.withLock { $0 }, 1, "no withdrawal since the last grace period")
        let valid = try table.validEntries()
        XCTAssertEqual(valid.count, Self.buckets * Self.ways)
        XCTAssertTrue(valid.allSatisfy { $0.entry.identity == 200 | UInt32(NA_IPCACHE_V4_VALID) })

        // A withdrawal since: the next reuse waits for another grace period.
        try table.apply(changes(0, remove: true))
        XCTAssertEqual(try table.apply(changes(250)), Array(repeating: true, count: Self.buckets * Self.ways))
        XCTAssertEqual(graces.withLock { $0 }, 2)

        // Without a grace period on offer, a bucket of withdrawn entries has no room: the entry is left to the hash.
        try table.apply(changes(0, remove: true))
        let refused = try BucketTable<na_ipcache_v4_entry>(
            map, ways: Self.ways, word: \.identity, valid: UInt32(NA_IPCACHE_V4_VALID),
            stale: UInt32(NA_IPCACHE_V4_STALE), gracePeriod: { false })
        var overflowed: [UInt32] = []
        let results = try refused.apply(Array(changes(300).prefix(Self.ways))) { overflowed += $0 }
        XCTAssertEqual(results, Array(repeating: false, count: Self.ways))
        XCTAssertEqual(Set(overflowed), [0])
        XCTAssertTrue(try refused.validEntries().isEmpty)
    }
}
