import DatapathCore

/// A key of na_nat (a `na_ct_key`) in a form that hashes quickly: its 40 bytes as five words.
struct NATKey: Hashable, Sendable {
    private struct Words: Hashable {
        var a, b, c, d, e: UInt64
    }
    private let words: Words

    init(_ key: na_ct_key) {
        words = valueFrom(bytesOf(key), at: 0)
    }

    init(bytes: [UInt8]) {
        words = valueFrom(bytes, at: 0)
    }

    var key: na_ct_key { valueFrom(bytes, at: 0) }
    var bytes: [UInt8] { bytesOf(words) }
}

/// The two halves of a mapping, as the datapath derives one from the other (bpf/lib/nat.h).
enum NATHalves {
    /// The reverse half's key: the reply tuple after translation.
    static func reverseKey(forward key: na_ct_key, entry: na_nat_entry) -> na_ct_key {
        var reverse = na_ct_key()
        reverse.saddr = key.daddr
        reverse.daddr = entry.addr
        reverse.sport = key.dport
        reverse.dport = entry.port
        reverse.proto = key.proto
        reverse.family = key.family
        reverse.direction = UInt8(NA_DIR_INGRESS.rawValue)
        return reverse
    }

    /// The forward half's key: the pod's original tuple.
    static func forwardKey(reverse key: na_ct_key, entry: na_nat_entry) -> na_ct_key {
        var forward = na_ct_key()
        forward.saddr = entry.addr
        forward.daddr = key.saddr
        forward.sport = entry.port
        forward.dport = key.sport
        forward.proto = key.proto
        forward.family = key.family
        forward.direction = UInt8(NA_DIR_EGRESS.rawValue)
        return forward
    }

    static func isForward(_ key: na_ct_key) -> Bool { key.direction == UInt8(NA_DIR_EGRESS.rawValue) }

    /// Whether `entry` translates to `address`:`port` (all 16 address bytes compared).
    static func points<Address>(_ entry: na_nat_entry, to address: Address, port: UInt16) -> Bool {
        entry.port == port && tupleBytes(entry.addr) == tupleBytes(address)
    }
}

/// A snapshot of na_nat read in batches, with each forward half paired to its reverse half.
struct NATTable {
    /// Every entry read, by key.
    var entries: [NATKey: na_nat_entry] = [:]

    /// Reads the whole map (BPF_MAP_LOOKUP_BATCH where the kernel has it).
    static func read(_ map: BPFMap) throws -> NATTable {
        var table = NATTable()
        table.entries.reserveCapacity(1024)
        try map.forEachBatch { keys, values in
            for (key, value) in zip(keys, values) {
                table.entries[NATKey(bytes: key)] = valueFrom(value, at: 0) as na_nat_entry
            }
            return true
        }
        return table
    }

    /// The reverse half belonging to a forward half, when present and pointing back at it.
    func reverse(of key: na_ct_key, _ entry: na_nat_entry) -> (NATKey, na_nat_entry)? {
        let reverseKey = NATKey(NATHalves.reverseKey(forward: key, entry: entry))
        guard let reverse = entries[reverseKey], NATHalves.points(reverse, to: key.saddr, port: key.sport) else {
            return nil
        }
        return (reverseKey, reverse)
    }

    /// The forward half belonging to a reverse half, when present and pointing back at it.
    func forward(of key: na_ct_key, _ entry: na_nat_entry) -> (NATKey, na_nat_entry)? {
        let forwardKey = NATKey(NATHalves.forwardKey(reverse: key, entry: entry))
        guard let forward = entries[forwardKey], NATHalves.points(forward, to: key.daddr, port: key.dport) else {
            return nil
        }
        return (forwardKey, forward)
    }

    /// Forward halves with their reverse halves (nil when missing), sorted by forward key bytes.
    func mappings() -> [NATMapping] {
        entries.compactMap { key, entry -> NATMapping? in
            let tuple = key.key
            guard NATHalves.isForward(tuple) else { return nil }
            return NATMapping(key: tuple, forward: entry, reverse: reverse(of: tuple, entry)?.1)
        }.sorted { $0.keyBytes.lexicographicallyPrecedes($1.keyBytes) }
    }
}
