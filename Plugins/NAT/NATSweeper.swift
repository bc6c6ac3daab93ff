import DatapathCore

/// What one sweep of na_nat found and removed.
public struct NATSweepStats: Sendable, Equatable {
    /// Entries read (halves).
    public var scanned = 0
    /// Whole mappings left after the sweep.
    public var mappings = 0
    /// Mappings deleted because their lifetime had passed.
    public var expired = 0
    /// Mappings deleted because the conntrack entry of their flow is gone.
    public var untracked = 0
    /// Halves deleted because their partner is missing or belongs to another flow.
    public var lone = 0
    /// Entries deleted in all.
    public var deletedEntries = 0
    /// Mappings left per destination (address, port, protocol), most used first, at most `topCount`.
    public var topDestinations: [DestinationUse] = []
    public var duration: Duration = .zero

    public init() {}
}

/// How many mappings (translated ports) one destination uses: each destination address, port and protocol has
/// the whole port range to itself, so this is what runs out first.
public struct DestinationUse: Sendable, Equatable {
    public var destination: String
    public var mappings: Int
}

/// Garbage collection of na_nat. A mapping's two halves are deleted together, in one BPF_MAP_DELETE_BATCH with
/// the rest of the sweep: when their lifetime has passed, or when the flow was tracked by an endpoint's conntrack
/// and that entry is gone (expired or deleted). A half whose partner is missing or points elsewhere only misroutes
/// replies or holds a port, and is deleted once older than `grace` seconds (a mapping is written half by half).
struct NATSweeper: Sendable {
    let nat: BPFMap
    /// na_ct; nil skips the conntrack check.
    let conntrack: BPFMap?
    var grace: UInt32 = 2
    /// Up to this many tracked mappings, conntrack is asked key by key; above, it is walked in batches.
    var lookupLimit = 512
    var topCount = 10

    init(nat: BPFMap, conntrack: BPFMap?) throws {
        _ = try TypedMap<na_ct_key, na_nat_entry>(nat)
        if let conntrack { _ = try TypedMap<na_ct_key, na_ct_value>(conntrack) }
        self.nat = nat
        self.conntrack = conntrack
    }

    /// Sweeps at `now` (CLOCK_MONOTONIC seconds, the datapath's clock).
    func sweep(now: UInt32) throws -> NATSweepStats {
        let started = ContinuousClock.now
        let table = try NATTable.read(nat)
        var stats = NATSweepStats()
        stats.scanned = table.entries.count
        var doomed: [[UInt8]] = []
        var tracked: [(forward: NATKey, reverse: NATKey)] = []
        var alive: [na_ct_key] = []

        for (key, entry) in table.entries {
            let tuple = key.key
            if NATHalves.isForward(tuple) {
                guard let (reverseKey, reverse) = table.reverse(of: tuple, entry) else {
                    if isStale(entry, now: now) {
                        stats.lone += 1
                        doomed.append(key.bytes)
                    }
                    continue
                }
                if max(entry.lifetime, reverse.lifetime) < now {
                    stats.expired += 1
                    doomed += [key.bytes, reverseKey.bytes]
                } else if entry.flags & UInt32(NA_NAT_TRACKED) != 0 {
                    tracked.append((key, reverseKey))
                } else {
                    alive.append(tuple)
                }
            } else if table.forward(of: tuple, entry) == nil && isStale(entry, now: now) {
                stats.lone += 1
                doomed.append(key.bytes)
            }
        }

        let gone = try goneFromConntrack(tracked.map(\.forward), now: now)
        for pair in tracked {
            if gone.contains(pair.forward) {
                stats.untracked += 1
                doomed += [pair.forward.bytes, pair.reverse.bytes]
            } else {
                alive.append(pair.forward.key)
            }
        }
        stats.deletedEntries = try nat.deleteBatch(doomed)
        stats.mappings = alive.count
        stats.topDestinations = Self.destinations(alive, top: topCount)
        stats.duration = ContinuousClock.now - started
        return stats
    }

    /// Deletes every mapping (both halves) whose original source is in `sources`, or all entries when nil.
    /// Returns the number of entries deleted.
    func purge(sources: Set<IPAddress>?) throws -> Int {
        let table = try NATTable.read(nat)
        guard let sources else { return try nat.deleteBatch(table.entries.keys.map(\.bytes)) }
        var doomed: [[UInt8]] = []
        for (key, entry) in table.entries {
            let tuple = key.key
            let family: IPAddress.Family = tuple.family == UInt8(NA_FAMILY_IPV6) ? .ipv6 : .ipv4
            if NATHalves.isForward(tuple) {
                guard sources.contains(IPAddress(family: family, bytes: tupleBytes(tuple.saddr))) else { continue }
                doomed += [key.bytes, bytesOf(NATHalves.reverseKey(forward: tuple, entry: entry))]
            } else if sources.contains(IPAddress(family: family, bytes: tupleBytes(entry.addr))) {
                doomed.append(key.bytes)
            }
        }
        // A reverse half can be named twice (from its forward half and on its own): delete each key once.
        var seen = Set<[UInt8]>()
        return try nat.deleteBatch(doomed.filter { seen.insert($0).inserted })
    }

    private func isStale(_ entry: na_nat_entry, now: UInt32) -> Bool {
        entry.lifetime < now || UInt64(entry.created) + UInt64(grace) < UInt64(now)
    }

    /// The forward keys among `keys` whose conntrack entry (same key: original tuple, egress) is missing or
    /// expired.
    private func goneFromConntrack(_ keys: [NATKey], now: UInt32) throws -> Set<NATKey> {
        guard let conntrack, !keys.isEmpty else { return [] }
        if keys.count <= lookupLimit {
            let typed = try TypedMap<na_ct_key, na_ct_value>(conntrack)
            return Set(try keys.filter { key in (try typed.lookup(key.key)).map { $0.lifetime < now } ?? true })
        }
        var pending = Set(keys)
        try conntrack.forEachBatch { keys, values in
            for (key, value) in zip(keys, values) {
                let natKey = NATKey(bytes: key)
                if pending.contains(natKey), (valueFrom(value, at: 0) as na_ct_value).lifetime >= now {
                    pending.remove(natKey)
                }
            }
            return !pending.isEmpty
        }
        return pending
    }

    static func destinations(_ keys: [na_ct_key], top: Int) -> [DestinationUse] {
        var counts: [String: Int] = [:]
        for key in keys {
            let family: IPAddress.Family = key.family == UInt8(NA_FAMILY_IPV6) ? .ipv6 : .ipv4
            let address = IPAddress(family: family, bytes: tupleBytes(key.daddr))
            let name = "\(address):\(UInt16(bigEndian: key.dport))/\(IPProtocol.name(of: key.proto))"
            counts[name, default: 0] += 1
        }
        return counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(top).map {
            DestinationUse(destination: $0.key, mappings: $0.value)
        }
    }
}
