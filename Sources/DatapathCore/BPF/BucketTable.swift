import AgentAPI
import CGlibc
import Synchronization

/// Read-modify-writes of buckets, one at a time in the process (each table has one writer there).
private let bucketWrites = Mutex(())

/// An array map of buckets of `ways` entries each, which the programs read without a lock: a copy of entries whose
/// home is a hash, laid out so that a lookup reads one 64-byte bucket (`na_ipcache_v4`, `na_ptable`).
///
/// An array element is rewritten in place, so no entry a packet may be reading is rewritten:
/// - programs read an entry's flag word (`word`) first, and the rest only while `valid` is set there;
/// - an entry is filled in two writes, everything but the valid bit first, then the valid bit;
/// - a withdrawn entry (removed, or replaced by one of another value) is marked `stale` and not reused until an RCU
///   grace period (`cglibc_synchronize_rcu`) has passed since, so no packet that saw it valid is still running.
///   The writer waits for one only when a bucket has no free entry left and no grace period began since the
///   table's last withdrawals (`GracePeriods`): then every stale entry is free. Withdrawals start one on a thread
///   of their own, so a change a moment later seldom waits.
///
/// A bucket with no room leaves an entry to the hash, where programs look on a miss.
public struct BucketTable<Entry: BitwiseCopyable> {
    private let map: BPFMap
    public let buckets: UInt32
    private let word: WritableKeyPath<Entry, UInt32>
    private let valid: UInt32
    private let stale: UInt32
    /// Waits out an RCU grace period; false when the kernel offers none.
    private let gracePeriod: () -> Bool
    /// Whether withdrawals start a grace period on a thread of their own (`GracePeriods.waitSoon`).
    private let waitsSoon: Bool

    public init(
        _ map: BPFMap, ways: Int, word: WritableKeyPath<Entry, UInt32>, valid: UInt32, stale: UInt32,
        gracePeriod: @escaping () -> Bool = { cglibc_synchronize_rcu() == 0 }, waitsSoon: Bool = true
    ) throws {
        // A bucket may end in padding shorter than an entry (na_ipcache_v6: three 20-byte entries in 64 bytes).
        let stride = MemoryLayout<Entry>.stride
        guard map.info.valueSize >= ways * stride, map.info.valueSize < (ways + 1) * stride, map.info.keySize == 4
        else {
            throw AgentError.datapath("\(map.name) is not an array of \(ways) \(Entry.self) per bucket")
        }
        self.map = map
        buckets = UInt32(map.info.maxEntries)
        self.word = word
        self.valid = valid
        self.stale = stale
        self.gracePeriod = gracePeriod
        self.waitsSoon = waitsSoon
    }

    public func isValid(_ entry: Entry) -> Bool { entry[keyPath: word] & valid != 0 }

    private func isStale(_ entry: Entry) -> Bool { entry[keyPath: word] & stale != 0 }

    private func isFree(_ entry: Entry) -> Bool { !isValid(entry) && !isStale(entry) }

    /// Whether every stale entry of the table may be reused: a grace period began after its last withdrawals, or
    /// one is waited out now. False when the kernel refuses one.
    private func staleAreFree() -> Bool {
        GracePeriods.staleAreFree(map: map.info.id) || GracePeriods.wait(gracePeriod)
    }

    /// One change: `entry` becomes the bucket's valid entry of its key (`matches`), or with `entry` nil the
    /// bucket's valid entry of the key is withdrawn.
    public struct Change {
        public var bucket: UInt32
        public var entry: Entry?
        public var matches: (Entry) -> Bool

        public init(bucket: UInt32, entry: Entry?, matches: @escaping (Entry) -> Bool) {
            self.bucket = bucket
            self.entry = entry
            self.matches = matches
        }
    }

    /// Applies `changes`, each bucket read once, in three batch writes so that no key is ever missing from the table
    /// while it has an entry before and after: new entries are written without their valid bit, then the valid bits
    /// are set, then the entries they replace and those removed are withdrawn. A new entry is never written where
    /// one was withdrawn within the last grace period; when its bucket has no other room, the entry is left to the
    /// hash and `overflow` gets every such bucket (once, before any withdrawal). An entry already valid with the same
    /// bytes is left alone. Returns, per change, whether the table holds its outcome.
    @discardableResult
    public func apply(_ changes: [Change], overflow: ([UInt32]) throws -> Void = { _ in }) throws -> [Bool] {
        guard !changes.isEmpty else { return [] }
        return try bucketWrites.withLock { _ in
            var loaded: [UInt32: [Entry]] = [:]
            var filled: [UInt32: [Int]] = [:]
            var withdrawals: [UInt32: [Int]] = [:]
            var results = [Bool](repeating: true, count: changes.count)
            // This call's withdrawals are written at its end: every stale entry it reads is older than the call.
            for (number, change) in changes.enumerated() {
                guard change.bucket < buckets else {
                    results[number] = change.entry == nil
                    continue
                }
                var entries = try loaded[change.bucket] ?? load(change.bucket)
                let current = entries.indices.first {
                    isValid(entries[$0]) && change.matches(entries[$0])
                        && !(withdrawals[change.bucket]?.contains($0) ?? false)
                }
                var wanted = change.entry
                wanted?[keyPath: word] &= ~(valid | stale)
                if let slot = current, let new = wanted {
                    var same = new
                    same[keyPath: word] |= valid
                    if bytesOf(entries[slot]) == bytesOf(same) { continue }
                }
                if let new = wanted {
                    let taken = filled[change.bucket] ?? []
                    var free = entries.indices.first { isFree(entries[$0]) && !taken.contains($0) }
                    if free == nil, entries.contains(where: isStale), staleAreFree() {
                        entries = entries.map(freed)
                        free = entries.indices.first { isFree(entries[$0]) && !taken.contains($0) }
                    }
                    if let free {
                        entries[free] = new
                        filled[change.bucket, default: []].append(free)
                    } else {
                        results[number] = false
                    }
                }
                if let slot = current { withdrawals[change.bucket, default: []].append(slot) }
                loaded[change.bucket] = entries
            }
            if !filled.isEmpty { try store(filled.keys.map { ($0, loaded[$0]!) }) }
            for (index, slots) in filled { for slot in slots { loaded[index]![slot][keyPath: word] |= valid } }
            if !filled.isEmpty { try store(filled.keys.map { ($0, loaded[$0]!) }) }
            let full = changes.indices.filter { !results[$0] && changes[$0].bucket < buckets }.map {
                changes[$0].bucket
            }
            if !full.isEmpty { try overflow(full) }
            for (index, slots) in withdrawals { for slot in slots { withdraw(&loaded[index]![slot]) } }
            if !withdrawals.isEmpty {
                try store(withdrawals.keys.map { ($0, loaded[$0]!) })
                GracePeriods.withdrew(map: map.info.id)
                if waitsSoon { GracePeriods.waitSoon() }
            }
            return results
        }
    }

    /// Makes `entry` the bucket's valid entry of its key (`matches`): see `apply`. False when the bucket has no
    /// room for it.
    @discardableResult
    public func set(_ index: UInt32, _ entry: Entry, matches: @escaping (Entry) -> Bool) throws -> Bool {
        try apply([Change(bucket: index, entry: entry, matches: matches)]).first ?? false
    }

    /// The bucket's valid entry of the key (`matches`) is withdrawn.
    public func remove(_ index: UInt32, matches: @escaping (Entry) -> Bool) throws {
        try apply([Change(bucket: index, entry: nil, matches: matches)])
    }

    /// Withdraws every valid entry `keep` refuses (`keep` sees each valid entry once, with its bucket), then, after
    /// one grace period, frees every stale entry: at start, over what an earlier agent left. Returns how many it
    /// withdrew.
    @discardableResult
    public func prune(keeping keep: (UInt32, Entry) -> Bool) throws -> Int {
        try bucketWrites.withLock { _ in
            var withdrawn = 0
            var withStale: [UInt32: [Entry]] = [:]
            try forEachBucket { index, read in
                var entries = read
                var changed = false
                for slot in entries.indices where isValid(entries[slot]) && !keep(index, entries[slot]) {
                    withdraw(&entries[slot])
                    changed = true
                    withdrawn += 1
                }
                if changed { try store(index, entries) }
                if entries.contains(where: isStale) { withStale[index] = entries }
            }
            if withdrawn > 0 { GracePeriods.withdrew(map: map.info.id) }
            if !withStale.isEmpty, staleAreFree() {
                for (index, entries) in withStale { try store(index, entries.map(freed)) }
            }
            return withdrawn
        }
    }

    /// The valid entries, with their bucket.
    public func validEntries() throws -> [(bucket: UInt32, entry: Entry)] {
        var result: [(bucket: UInt32, entry: Entry)] = []
        try forEachBucket { index, entries in result += entries.filter(isValid).map { (index, $0) } }
        return result
    }

    /// A bucket's entries as the map holds them (`value`: one element's bytes, as a map dump gives them).
    public static func entries(ofBucket value: [UInt8]) -> [Entry] {
        (0..<value.count / MemoryLayout<Entry>.stride).map { valueFrom(value, at: $0 * MemoryLayout<Entry>.stride) }
    }

    private func withdraw(_ entry: inout Entry) {
        entry[keyPath: word] = (entry[keyPath: word] & ~valid) | stale
    }

    private func freed(_ entry: Entry) -> Entry {
        var entry = entry
        entry[keyPath: word] &= ~stale
        return entry
    }

    /// Every bucket that holds anything, with its index, read in batches of 1,024 so the table is never copied whole
    /// (a bucket of zeros, most of a table, is passed over without being decoded).
    private func forEachBucket(_ body: (UInt32, [Entry]) throws -> Void) throws {
        let size = map.info.valueSize
        let batched = try map.walkBatches(batchSize: 1024) { keys, values, count in
            for item in 0..<count where !values.withUnsafeBytes({ Self.zero($0, item * size, size) }) {
                let index: UInt32 = valueFrom(keys, at: item * 4)
                try body(index, Self.entries(ofBucket: Array(values[item * size..<(item + 1) * size])))
            }
            return true
        }
        guard !batched else { return }
        for index in 0..<buckets { try body(index, try load(index)) }
    }

    /// Whether `size` bytes at `offset` are all zero, read eight at a time (`size` is a multiple of 8).
    private static func zero(_ raw: UnsafeRawBufferPointer, _ offset: Int, _ size: Int) -> Bool {
        stride(from: offset, to: offset + size, by: 8).allSatisfy {
            raw.loadUnaligned(fromByteOffset: $0, as: UInt64.self) == 0
        }
    }

    private func load(_ index: UInt32) throws -> [Entry] {
        guard let value = try map.lookup(key: bytesOf(index)) else { return [] }
        return Self.entries(ofBucket: value)
    }

    private func store(_ index: UInt32, _ entries: [Entry]) throws {
        try map.update(key: bytesOf(index), value: bytes(entries))
    }

    /// Several buckets in one batch update.
    private func store(_ buckets: [(UInt32, [Entry])]) throws {
        try map.updateBatch(keys: buckets.map { bytesOf($0.0) }, values: buckets.map { bytes($0.1) })
    }

    private func bytes(_ entries: [Entry]) -> [UInt8] {
        var value = [UInt8](repeating: 0, count: map.info.valueSize)
        for (slot, entry) in entries.enumerated() {
            withUnsafeBytes(of: entry) { raw in
                value.replaceSubrange(
                    slot * MemoryLayout<Entry>.stride..<slot * MemoryLayout<Entry>.stride + raw.count, with: raw)
            }
        }
        return value
    }
}
