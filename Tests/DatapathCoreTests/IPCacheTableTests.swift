import AgentAPI
import CNodeABI
import DatapathCore
import Glibc
import XCTest

/// `na_ipcache_v4` and `na_ipcache_v6` as `IPCache` keeps them: a valid entry per host entry its bucket has room
/// for, withdrawn entries left stale until a grace period, and the hash answering for the rest (fixtures:
/// IPCacheHostFixtures).
final class IPCacheTableTests: XCTestCase {
    private var h: DatapathHarness!

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
        h = try DatapathHarness.shared()
        try h.reset()
        // Stale entries an earlier test left in these buckets (the harness clears the buckets of what the maps hold).
        let own = ["10.0.9.1", "10.0.9.2", "10.0.9.3", "fd00::9:1"].compactMap(IPAddress.init)
        for address in own + Self.colliding + Self.colliding6 {
            try h.clearIPCacheTable(only: address)
        }
    }

    private func address(_ text: String) throws -> IPAddress { try XCTUnwrap(IPAddress(text), text) }

    private func table() throws -> [String: UInt32] {
        Dictionary(try h.ipcacheWriter.tableEntries().map { ($0.address.description, $0.identity) }) { a, _ in a }
    }

    /// The raw entries of an address's bucket: (address, identity word) of every entry ever filled.
    private func bucket(of address: IPAddress) throws -> [(address: String, word: UInt32)] {
        let word = try XCTUnwrap(address.ipcacheV4Word)
        let bucket = try h.ipcacheV4.lookup(na_ipcache_v4_bucket_of(word)) ?? na_ipcache_v4_bucket()
        return withUnsafeBytes(of: bucket.entries) { raw in
            raw.bindMemory(to: na_ipcache_v4_entry.self).filter { $0.identity != 0 }.map {
                (IPAddress(ipcacheV4Word: $0.addr).description, $0.identity)
            }
        }
    }

    /// The raw entries of an IPv6 address's bucket: (address, identity word) of every entry ever filled.
    private func bucket6(of address: IPAddress) throws -> [(address: String, word: UInt32)] {
        let w = try XCTUnwrap(address.ipcacheV6Words)
        let bucket = try h.ipcacheV6.lookup(na_ipcache_v6_bucket_of(w.0, w.1, w.2, w.3)) ?? na_ipcache_v6_bucket()
        return withUnsafeBytes(of: bucket.entries) { raw in
            raw.bindMemory(to: na_ipcache_v6_entry.self).filter { $0.identity != 0 }.map {
                (IPAddress(ipcacheV6Words: $0.addr).description, $0.identity)
            }
        }
    }

    /// Four IPv6 addresses fd00::a:x that share a bucket, the first four found.
    private static let colliding6: [IPAddress] = {
        var seen: [UInt32: [IPAddress]] = [:]
        for x in 1..<65536 {
            let address = IPAddress(
                family: .ipv6, bytes: [0xfd, 0] + [UInt8](repeating: 0, count: 10) + [0, 0x0a, 0, 0]
            )
            .with(lastTwoBytes: UInt16(x))
            let w = address.ipcacheV6Words!
            let index = na_ipcache_v6_bucket_of(w.0, w.1, w.2, w.3)
            seen[index, default: []].append(address)
            if seen[index]!.count == 4 { return seen[index]! }
        }
        return []
    }()

    /// Ten addresses 10.b.y.z (b = 0...9) that share the bucket of 10.0.0.1, solved for rather than searched: an
    /// address word is lo + hi << 16 (lo = 10 | b << 8, hi = y | z << 8 as the CPU loads the bytes), so its bucket,
    /// the top 16 bits of word × 0x9E3779B1, is (top16(lo × 0x9E3779B1) + hi × 0x79B1) mod 2^16, which gives hi.
    private static let colliding: [IPAddress] = {
        let target = na_ipcache_v4_bucket_of(IPAddress(family: .ipv4, bytes: [10, 0, 0, 1]).ipcacheV4Word!)
        let low: UInt32 = 0x79B1
        var inverse = low  // Newton's iteration: each step doubles the bits of low × inverse ≡ 1 that are right.
        for _ in 0..<4 { inverse = inverse &* (2 &- low &* inverse) & 0xffff }
        return (UInt32(0)..<10).map { b in
            let lo = 10 | b << 8
            let hi = ((target &- (lo &* 0x9E37_79B1) >> 16) & 0xffff) &* inverse & 0xffff
            return IPAddress(ipcacheV4Word: lo | hi << 16)
        }.filter { na_ipcache_v4_bucket_of($0.ipcacheV4Word!) == target }
    }()

    func testAnIdentityChangeWithdrawsTheOldEntryAndFillsANewOne() throws {
        let cache = try h.ipcacheWriter
        let peer = try address("10.0.9.1")
        try cache.set(peer, identity: 500)
        XCTAssertEqual(try table(), ["10.0.9.1": 500])
        XCTAssertEqual(try bucket(of: peer).map(\.word), [UInt32(NA_IPCACHE_V4_VALID) | 500])

        try cache.set(peer, identity: 501)
        XCTAssertEqual(try table(), ["10.0.9.1": 501])
        XCTAssertEqual(
            try bucket(of: peer).map(\.word), [UInt32(NA_IPCACHE_V4_STALE) | 500, UInt32(NA_IPCACHE_V4_VALID) | 501])

        try cache.remove(peer)
        XCTAssertEqual(try table(), [:])
        XCTAssertEqual(
            try bucket(of: peer).map(\.word), [UInt32(NA_IPCACHE_V4_STALE) | 500, UInt32(NA_IPCACHE_V4_STALE) | 501])
        XCTAssertNil(try h.ipcacheHosts.lookup(IPCache.key(peer)))
    }

    func testOnlyHostEntriesOfIdentitiesItCanHoldAreInTheTables() throws {
        let cache = try h.ipcacheWriter
        try cache.set(try address("fd00::9:1"), identity: 500)
        try cache.set(try address("10.0.9.0"), prefix: 24, identity: 501)
        try cache.set(try address("fd00::9:0"), prefix: 112, identity: 502)
        try cache.set(try address("10.0.9.7"), identity: 1 << 30)
        XCTAssertEqual(try table(), ["fd00::9:1": 500])
        XCTAssertEqual(try h.ipcacheHosts.entries().count, 2)
    }

    func testAnIPv6IdentityChangeWithdrawsTheOldEntryAndAFullBucketLeavesAnAddressToTheHash() throws {
        let cache = try h.ipcacheWriter
        let peer = try address("fd00::9:1")
        try cache.set(peer, identity: 500)
        try cache.set(peer, identity: 501)
        XCTAssertEqual(try table(), ["fd00::9:1": 501])
        XCTAssertEqual(
            try bucket6(of: peer).map(\.word), [UInt32(NA_IPCACHE_V4_STALE) | 500, UInt32(NA_IPCACHE_V4_VALID) | 501])
        try cache.remove(peer)
        XCTAssertEqual(try table(), [:])
        XCTAssertNil(try h.ipcacheHosts.lookup(IPCache.key(peer)))

        // Three share a bucket; the fourth is in the hash only, where the programs look on a miss.
        let addresses = Self.colliding6
        XCTAssertEqual(addresses.count, 4)
        for (offset, address) in addresses.enumerated() { try cache.set(address, identity: 600 + UInt32(offset)) }
        let entries = try table()
        XCTAssertEqual(entries.count, 3)
        XCTAssertEqual(Set(entries.keys), Set(addresses.prefix(3).map(\.description)))
        XCTAssertEqual(try h.ipcacheHosts.lookup(IPCache.key(addresses[3]))?.identity, 603)
        XCTAssertEqual(try bucket6(of: addresses[0]).count, 3)
    }

    func testAFullBucketLeavesAnAddressToTheHashAndReusesStaleEntriesAfterAGracePeriod() throws {
        let cache = try h.ipcacheWriter
        let addresses = Self.colliding
        XCTAssertEqual(addresses.count, 10)
        for (offset, address) in addresses.prefix(9).enumerated() {
            try cache.set(address, identity: 600 + UInt32(offset))
        }
        // Eight fit; the ninth is in the hash only, where the programs look on a miss.
        XCTAssertEqual(try table().count, 8)
        XCTAssertNil(try table()[addresses[8].description])
        XCTAssertEqual(try h.ipcacheHosts.lookup(IPCache.key(addresses[8]))?.identity, 608)

        // A removal leaves its entry stale; the next address frees it after a grace period and takes it.
        try cache.remove(addresses[0])
        XCTAssertEqual(try bucket(of: addresses[0]).filter { $0.word & UInt32(NA_IPCACHE_V4_STALE) != 0 }.count, 1)
        try cache.set(addresses[9], identity: 700)
        let entries = try table()
        XCTAssertEqual(entries.count, 8)
        XCTAssertEqual(entries[addresses[9].description], 700)
        XCTAssertNil(entries[addresses[0].description])
        XCTAssertEqual(try bucket(of: addresses[0]).filter { $0.word & UInt32(NA_IPCACHE_V4_STALE) != 0 }.count, 0)
    }

    func testSyncWithdrawsWhatTheHashLacksAndFillsWhatTheTableLacks() throws {
        let cache = try h.ipcacheWriter
        let kept = try address("10.0.9.1")
        let lost = try address("10.0.9.2")
        try cache.set(kept, identity: 500)
        try cache.set(lost, identity: 501)
        // As a crash could leave it: a valid entry the ipcache no longer has, and one of its entries missing.
        let bogus = try address("10.0.9.3")
        let word = try XCTUnwrap(bogus.ipcacheV4Word)
        var bucket = try h.ipcacheV4.lookup(na_ipcache_v4_bucket_of(word)) ?? na_ipcache_v4_bucket()
        withUnsafeMutableBytes(of: &bucket.entries) { raw in
            let entries = raw.bindMemory(to: na_ipcache_v4_entry.self)
            let free = entries.firstIndex { $0.identity == 0 }!
            entries[free] = na_ipcache_v4_entry(identity: UInt32(NA_IPCACHE_V4_VALID) | 999, addr: word)
        }
        try h.ipcacheV4.update(na_ipcache_v4_bucket_of(word), bucket)
        try h.clearIPCacheTable(only: lost)
        XCTAssertEqual(try table(), ["10.0.9.1": 500, "10.0.9.3": 999])

        // And an IPv6 entry the table lost.
        let lost6 = try address("fd00::9:1")
        try cache.set(lost6, identity: 502)
        try h.clearIPCacheTable(only: lost6)

        XCTAssertEqual(try cache.syncHostEntries(), 3)
        XCTAssertEqual(try table(), ["10.0.9.1": 500, "10.0.9.2": 501, "fd00::9:1": 502])
        XCTAssertEqual(try cache.syncHostEntries(), 0)
    }
}

extension IPAddress {
    /// The address with its last two bytes replaced by `value` (big-endian).
    fileprivate func with(lastTwoBytes value: UInt16) -> IPAddress {
        var bytes = self.bytes
        bytes[bytes.count - 2] = UInt8(value >> 8)
        bytes[bytes.count - 1] = UInt8(value & 0xff)
        return IPAddress(family: family, bytes: bytes)
    }
}
