import DatapathCore

/// How full na_ct is between sweeps, without walking it: the entries a sweep left plus the entries the datapath
/// created since (na_ct_created, a per-CPU counter bumped on every creation).
///
/// The estimate only errs high (a creation that replaces an expired entry, or one the LRU evicts, counts as new),
/// which errs towards sweeping early rather than letting the LRU evict live flows.
struct FillEstimate: Sendable {
    /// Entries the last sweep left.
    var entries: Int
    /// The creation counter when that sweep began.
    var created: UInt64

    /// Entries now, estimated from the creation counter's current value.
    func estimate(createdNow: UInt64) -> Int {
        // A counter below the baseline was recreated (datapath reloaded without its pin): all of it is new.
        let since = createdNow >= created ? createdNow - created : createdNow
        return entries + Int(clamping: since)
    }
}

/// Reads na_ct_created: the sum of its per-CPU slots.
struct CreationCounter: Sendable {
    let map: BPFMap

    init?(_ map: BPFMap?) {
        guard let map, map.info.valueSize == MemoryLayout<UInt64>.size else { return nil }
        self.map = map
    }

    func total() throws -> UInt64 {
        guard let bytes = try map.lookup(key: [0, 0, 0, 0]) else { return 0 }
        return Self.sum(bytes, slots: map.valueCount)
    }

    /// Per-CPU values come 8-byte aligned, one slot per possible CPU.
    static func sum(_ bytes: [UInt8], slots: Int) -> UInt64 {
        var total: UInt64 = 0
        for slot in 0..<slots where (slot + 1) * 8 <= bytes.count {
            total &+= valueFrom(bytes, at: slot * 8) as UInt64
        }
        return total
    }
}
