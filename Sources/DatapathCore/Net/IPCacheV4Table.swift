import AgentAPI
import CGlibc
import CNodeABI
import Synchronization

/// `na_ipcache_v4`: the IPv4 host entries of `na_ipcache_host` again, eight to a bucket of one cache line that the
/// address's hash picks (`na_ipcache_v4_bucket_of`). A new connection to a known peer then costs the datapath one
/// cold line instead of a hash bucket and its element (~400 ns at 100,000 peers, BENCHMARKS.md §2). The hash stays
/// the entries' home: an address a full bucket has no room for lives there only, and programs look there on a miss.
///
/// An array element is rewritten in place, so no entry a packet may be reading is rewritten:
/// - a packet reads an entry's identity word, and its address only when `NA_IPCACHE_V4_VALID` is set there;
/// - an entry is filled in two writes, its address and identity first, then the valid bit;
/// - a withdrawn entry (removed, or its address given another identity) keeps `NA_IPCACHE_V4_STALE` and is not
///   reused until an RCU grace period (`cglibc_synchronize_rcu`) has passed since, so no packet that saw it valid
///   is still running. That wait happens only when an address finds its bucket full of valid and stale entries.
///
/// Only `IPCache` writes it, after the hash on a set and before it on a removal.
struct IPCacheV4Table {
    static let name = "na_ipcache_v4"

    /// Read-modify-writes of buckets, one at a time in the process (the agent has one table).
    private static let writing = Mutex(())

    private let map: TypedMap<UInt32, na_ipcache_v4_bucket>
    private let buckets: UInt32

    init(_ map: BPFMap) throws {
        self.map = try TypedMap(map)
        buckets = UInt32(map.info.maxEntries)
    }

    /// Identities a table entry can hold: not 0 (a miss to the programs) and below the flag bits.
    static func fits(_ identity: UInt32) -> Bool {
        identity != 0 && identity <= UInt32(NA_IPCACHE_V4_IDENTITY_MASK)
    }

    /// The address's entry says `identity`: an entry of another identity is withdrawn and a new one filled. An
    /// identity the table cannot hold, or a full bucket, leaves the address to the hash.
    func set(_ address: IPAddress, identity: UInt32) throws {
        guard let word = address.ipcacheV4Word else { return }
        try Self.writing.withLock { _ in
            guard let index = bucket(of: word) else { return }
            var entries = try load(index)
            if let slot = entries.firstIndex(where: { Self.valid($0) && $0.addr == word }) {
                if entries[slot].identity & UInt32(NA_IPCACHE_V4_IDENTITY_MASK) == identity { return }
                entries[slot].identity = Self.withdrawn(entries[slot].identity)
                try store(index, entries)
            }
            guard Self.fits(identity) else { return }
            try fill(index, &entries, word: word, identity: identity)
        }
    }

    /// The address has no valid entry any more (before the hash loses it, so the programs find it there meanwhile).
    func remove(_ address: IPAddress) throws {
        guard let word = address.ipcacheV4Word else { return }
        try Self.writing.withLock { _ in
            guard let index = bucket(of: word) else { return }
            var entries = try load(index)
            guard let slot = entries.firstIndex(where: { Self.valid($0) && $0.addr == word }) else { return }
            entries[slot].identity = Self.withdrawn(entries[slot].identity)
            try store(index, entries)
        }
    }

    /// The valid entries: address and identity.
    func entries() throws -> [(address: IPAddress, identity: UInt32)] {
        var result: [(address: IPAddress, identity: UInt32)] = []
        try forEachBucket { _, entries in result += Self.valid(entries) }
        return result
    }

    /// A bucket's valid entries.
    static func valid(_ entries: [na_ipcache_v4_entry]) -> [(address: IPAddress, identity: UInt32)] {
        entries.filter(valid).map {
            (IPAddress(ipcacheV4Word: $0.addr), $0.identity & UInt32(NA_IPCACHE_V4_IDENTITY_MASK))
        }
    }

    static func valid(in bucket: na_ipcache_v4_bucket) -> [(address: IPAddress, identity: UInt32)] {
        valid(entries(of: bucket))
    }

    /// Makes the valid entries exactly `wanted` (address word → identity, the hash's IPv4 host entries), as far as
    /// buckets have room: at start, over what an earlier agent left. Entries that differ, are in the wrong bucket
    /// or appear twice are withdrawn; after one grace period stale entries are freed; missing ones are filled.
    /// Returns how many entries it withdrew or filled.
    @discardableResult
    func sync(_ wanted: [UInt32: UInt32]) throws -> Int {
        try Self.writing.withLock { _ in
            var changed = 0
            var seen = Set<UInt32>()
            var withStale: [UInt32: [na_ipcache_v4_entry]] = [:]
            try forEachBucket { index, read in
                var entries = read
                var dirty = false
                for slot in entries.indices where Self.valid(entries[slot]) {
                    let entry = entries[slot]
                    let identity = entry.identity & UInt32(NA_IPCACHE_V4_IDENTITY_MASK)
                    if wanted[entry.addr] == identity, bucket(of: entry.addr) == index, !seen.contains(entry.addr) {
                        seen.insert(entry.addr)
                    } else {
                        entries[slot].identity = Self.withdrawn(entry.identity)
                        dirty = true
                        changed += 1
                    }
                }
                if dirty { try store(index, entries) }
                if entries.contains(where: Self.stale) { withStale[index] = entries }
            }
            if !withStale.isEmpty, cglibc_synchronize_rcu() == 0 {
                for (index, entries) in withStale { try store(index, entries.map(Self.freed)) }
            }
            for (word, identity) in wanted where !seen.contains(word) && Self.fits(identity) {
                guard let index = bucket(of: word) else { continue }
                var entries = try load(index)
                if try fill(index, &entries, word: word, identity: identity) { changed += 1 }
            }
            return changed
        }
    }

    /// Fills a free entry of the bucket (freeing its stale ones after a grace period when none is free): address
    /// and identity first, then the valid bit. False when the bucket has no room.
    @discardableResult
    private func fill(_ index: UInt32, _ entries: inout [na_ipcache_v4_entry], word: UInt32, identity: UInt32)
        throws -> Bool
    {
        var free = entries.firstIndex(where: Self.free)
        if free == nil, entries.contains(where: Self.stale), cglibc_synchronize_rcu() == 0 {
            entries = entries.map(Self.freed)
            free = entries.firstIndex(where: Self.free)
        }
        guard let free else { return false }
        entries[free] = na_ipcache_v4_entry(identity: identity, addr: word)
        try store(index, entries)
        entries[free].identity |= UInt32(NA_IPCACHE_V4_VALID)
        try store(index, entries)
        return true
    }

    private func bucket(of word: UInt32) -> UInt32? {
        let index = na_ipcache_v4_bucket_of(word)
        return index < buckets ? index : nil
    }

    private static func valid(_ entry: na_ipcache_v4_entry) -> Bool {
        entry.identity & UInt32(NA_IPCACHE_V4_VALID) != 0
    }

    private static func stale(_ entry: na_ipcache_v4_entry) -> Bool {
        entry.identity & UInt32(NA_IPCACHE_V4_STALE) != 0
    }

    private static func free(_ entry: na_ipcache_v4_entry) -> Bool { !valid(entry) && !stale(entry) }

    /// The identity word of a withdrawn entry: not valid, stale until a grace period has passed.
    private static func withdrawn(_ identity: UInt32) -> UInt32 {
        identity & ~UInt32(NA_IPCACHE_V4_VALID) | UInt32(NA_IPCACHE_V4_STALE)
    }

    /// A stale entry after a grace period: free (its address stays, no packet reads it without the valid bit).
    private static func freed(_ entry: na_ipcache_v4_entry) -> na_ipcache_v4_entry {
        var entry = entry
        entry.identity &= ~UInt32(NA_IPCACHE_V4_STALE)
        return entry
    }

    private static func entries(of bucket: na_ipcache_v4_bucket) -> [na_ipcache_v4_entry] {
        withUnsafeBytes(of: bucket.entries) { Array($0.bindMemory(to: na_ipcache_v4_entry.self)) }
    }

    /// Every bucket with its index, read in batches of 1,024 (64 KiB) so the table is never copied whole.
    private func forEachBucket(_ body: (UInt32, [na_ipcache_v4_entry]) throws -> Void) throws {
        let size = MemoryLayout<na_ipcache_v4_bucket>.size
        let batched = try map.map.walkBatches(batchSize: 1024) { keys, values, count in
            for item in 0..<count {
                let index: UInt32 = valueFrom(keys, at: item * 4)
                let bucket: na_ipcache_v4_bucket = valueFrom(values, at: item * size)
                try body(index, Self.entries(of: bucket))
            }
            return true
        }
        guard !batched else { return }
        for index in 0..<buckets { try body(index, try load(index)) }
    }

    private func load(_ index: UInt32) throws -> [na_ipcache_v4_entry] {
        Self.entries(of: try map.lookup(index) ?? na_ipcache_v4_bucket())
    }

    private func store(_ index: UInt32, _ entries: [na_ipcache_v4_entry]) throws {
        var bucket = na_ipcache_v4_bucket()
        withUnsafeMutableBytes(of: &bucket.entries) { raw in entries.withUnsafeBytes { raw.copyMemory(from: $0) } }
        try map.update(index, bucket)
    }
}
