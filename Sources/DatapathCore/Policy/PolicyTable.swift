import CNodeABI
import Synchronization

/// Read-modify-writes of `na_ptable_ports` and `na_ptable_peers` words, one at a time in the process: a bit lost to
/// a concurrent write would hide a key from the programs.
private let portWrites = Mutex(())

/// `na_ptable`: every endpoint's full-length policy keys (those of its hash in `na_policy_exact`) again,
/// four to a 64-byte bucket, so a new connection to a new peer costs the datapath one cold bucket for its
/// verdict where the hash's lookup read a bucket and an element (~400 ns at 100,000 peers, BENCHMARKS.md §2).
/// The hashes stay the entries' home; how entries change while packets read them is `BucketTable`'s.
///
/// A key its bucket has no room for stays in the hash only, and the bucket's bit in `na_ptable_ovf` is set (until the
/// next start). `na_ptable_ep` says per endpoint id whether the table holds every key of its hash but those of
/// overflowed buckets (`NA_POLICY_TABLE_COMPLETE`, not while the agent restores): then a miss in a bucket without
/// the bit is a miss of the hash too, and the programs go straight to the trie. Written by `EndpointDatapath`
/// beside the hash: new and changed keys after it, removed ones before.
///
/// `na_ptable_ports` has a bit per direction, protocol and port that some key of the table or the hashes names, set
/// before the first such key is written to the table and cleared by `rebuild` or `refreshFilters`: a new flow to a
/// port no key names reads neither the table nor the hash. `na_ptable_peers`, a Bloom filter of the (port, peer
/// identity) pairs the keys name, is kept the same way: a new flow of a peer no key names on a named port skips both
/// as well.
///
/// In front of the table, `PolicyBlocks` (`na_ptable_bits`) holds a bit per peer of the keys that share a rule and
/// verdict, 256 peers to a line; `apply`, `clear`, `suspend` and `rebuild` keep it with the table.
public struct PolicyTable {
    public static let name = "na_ptable"
    public static let stateName = "na_ptable_ep"
    public static let overflowName = "na_ptable_ovf"
    public static let portsName = "na_ptable_ports"
    public static let peersName = "na_ptable_peers"

    private let table: BucketTable<na_policy_table_entry>
    private let states: TypedMap<UInt32, UInt32>
    private let overflows: BitWords
    /// nil for an object from before the map (the micro benchmark's older builds).
    private let ports: BitWords?
    /// nil for an object from before the map, as `ports`.
    private let peers: BitWords?
    /// nil for an object from before the map, as `ports`.
    private let blocks: PolicyBlocks?

    public init(datapath: Datapath) throws {
        try self.init(
            table: datapath.map(Self.name), states: datapath.map(Self.stateName),
            overflows: datapath.map(Self.overflowName), ports: datapath.map(Self.portsName),
            peers: datapath.map(Self.peersName), blocks: datapath.map(PolicyBlocks.name))
    }

    /// Over the maps of a loaded object (benchmarks and tests that load one without a `Datapath`).
    public init(
        table: BPFMap, states: BPFMap, overflows: BPFMap, ports: BPFMap?, peers: BPFMap?, blocks: BPFMap? = nil
    ) throws {
        self.table = try BucketTable(
            table, ways: Int(NA_POLICY_TABLE_WAYS), word: \.meta, valid: UInt32(NA_POLICY_TABLE_VALID),
            stale: UInt32(NA_POLICY_TABLE_STALE))
        self.states = try TypedMap(states)
        self.overflows = try BitWords(overflows)
        self.ports = try ports.map { try BitWords($0, words: UInt32(NA_POLICY_PORTS_WORDS)) }
        self.peers = try peers.map { try BitWords($0, words: UInt32(NA_POLICY_PEERS_WORDS)) }
        self.blocks = try blocks.map { try PolicyBlocks($0) }
    }

    /// A key's bit in `na_ptable_ports`.
    public static func portBit(_ key: na_policy_key) -> UInt32 {
        na_policy_port_bit(key.direction, key.protocol, UInt16(bigEndian: key.dport))
    }

    /// A key's two bits in `na_ptable_peers`.
    public static func peerBits(_ key: na_policy_key) -> [UInt32] {
        let port = portBit(key)
        let identity = UInt32(bigEndian: key.identity)
        return [na_policy_peer_bit(port, identity, 0), na_policy_peer_bit(port, identity, 1)]
    }

    /// The table's change for one full-length key of an endpoint: set to `value`, or withdrawn (nil).
    public static func change(endpoint id: UInt32, _ key: na_policy_key, _ value: na_policy_value?)
        -> BucketTable<na_policy_table_entry>.Change
    {
        let identity = UInt32(bigEndian: key.identity)
        let keyBits = na_policy_table_key(key.direction, key.protocol, key.dport)
        let entry = value.map {
            na_policy_table_entry(
                meta: keyBits | ($0.flags & UInt32(NA_POLICY_DENY) != 0 ? UInt32(NA_POLICY_TABLE_DENY) : 0),
                identity: identity, ep_id: id, rule_id: $0.rule_id)
        }
        return .init(bucket: na_policy_table_bucket_of(id, identity, keyBits), entry: entry) {
            $0.meta & UInt32(NA_POLICY_TABLE_KEY_MASK) == keyBits && $0.identity == identity && $0.ep_id == id
        }
    }

    /// Applies an endpoint's changes of full-length keys (`nil`: removed); a bucket one of them finds full gets its
    /// overflow bit before any entry is withdrawn. Block bits of keys removed or changed are cleared first, those of
    /// the new values set last.
    public func apply(endpoint id: UInt32, _ changes: [(key: na_policy_key, value: na_policy_value?)]) throws {
        let write = {
            try name(changes.filter { $0.value != nil }.map(\.key))
            try table.apply(changes.map { Self.change(endpoint: id, $0.key, $0.value) }, overflow: markOverflowed)
        }
        guard let blocks else { return try write() }
        try blocks.apply(endpoint: id, changes, around: write)
    }

    /// Sets the bits of `keys` in `na_ptable_ports` and `na_ptable_peers` not set yet.
    private func name(_ keys: [na_policy_key]) throws {
        guard !keys.isEmpty else { return }
        try portWrites.withLock { _ in
            try peers?.set(keys.flatMap(Self.peerBits))
            try ports?.set(keys.map(Self.portBit))
        }
    }

    /// Called by the table's `apply` under its lock, which serializes these writes too.
    private func markOverflowed(_ buckets: [UInt32]) throws {
        try overflows.set(buckets)
    }

    /// An endpoint id whose policy maps were emptied or removed: its entries are withdrawn, and the table holds all
    /// of nothing (`NA_POLICY_TABLE_COMPLETE`) for the next endpoint under the id.
    public func clear(endpoint id: UInt32, keys: [na_policy_key]) throws {
        try blocks?.withdraw(endpoint: id, keys.map { ($0, nil) })
        try table.apply(keys.map { Self.change(endpoint: id, $0, nil) })
        try states.update(id, UInt32(NA_POLICY_TABLE_COMPLETE))
    }

    /// Start of a restore: until `rebuild`, every endpoint's miss goes on to its hash, as entries move and
    /// regenerate, and no block answers (each is withdrawn: what an earlier agent left is not trusted).
    public func suspend() throws {
        try blocks?.withdrawAll()
        try states.map.fill(bytesOf(UInt32(NA_POLICY_TABLE_UNKNOWN)))
        try ports?.setComplete(false)
        try peers?.setComplete(false)
    }

    /// End of a restore: the table holds exactly the full-length entries of the endpoints (`ids`) that their
    /// buckets have room for, only the buckets that lack room have their overflow bit, and every id is complete
    /// (ids without an endpoint hold nothing). `holds` says whether an endpoint's policy has a key with that value;
    /// `entries` gives an endpoint's full-length entries, asked for one endpoint at a time so that the start of an
    /// agent with many endpoints never holds all of them at once. `na_ptable_ports` and `na_ptable_peers` end with
    /// exactly the bits of those entries, and complete; the blocks are withdrawn and written again from the same
    /// entries. Returns how many entries it withdrew.
    @discardableResult
    public func rebuild(
        _ ids: [UInt32], holds: (UInt32, na_policy_key, na_policy_value) -> Bool,
        entries: (UInt32) -> [(key: na_policy_key, value: na_policy_value)]
    ) throws -> Int {
        let withdrawn = try table.prune { index, entry in
            let (key, value) = Self.policy(of: entry)
            return na_policy_table_bucket_of(entry.ep_id, entry.identity, entry.meta & UInt32(NA_POLICY_TABLE_KEY_MASK))
                == index && holds(entry.ep_id, key, value)
        }
        try overflows.rewrite(exactly: [])
        try blocks?.withdrawAll()
        var named: Set<UInt32> = []
        var pairs: [UInt32: UInt64] = [:]
        for id in ids.sorted() {
            let endpoint = entries(id)
            for (key, _) in endpoint {
                named.insert(Self.portBit(key))
                if peers != nil { for bit in Self.peerBits(key) { BitWords.insert(bit, into: &pairs) } }
            }
            try table.apply(endpoint.map { Self.change(endpoint: id, $0.key, $0.value) }, overflow: markOverflowed)
            try blocks?.publish(endpoint: id, endpoint)
        }
        try states.map.fill(bytesOf(UInt32(NA_POLICY_TABLE_COMPLETE)))
        try portWrites.withLock { _ in
            try peers?.rewrite(words: pairs)
            try ports?.rewrite(exactly: Array(named))
        }
        return withdrawn
    }

    /// Clears what `leftovers` notes that no current key needs, then forgets it: each noted `na_ptable_ports` word
    /// and `na_ptable_peers` line is rewritten to exactly the bits of the current keys. `forEachKey` visits every
    /// full-length key of every endpoint (those of the hashes, which the table holds again); it is called once for
    /// the ports and once per `refreshLines` lines that hold a noted one, and the words are computed in the
    /// leftovers' own scratch, so a refresh allocates nothing. The caller holds off every other write of these keys
    /// meanwhile, so a key named after a visit cannot lose its bits. A word a program reads meanwhile holds its old
    /// bits or its new ones, each with the bits of every current key. Nothing is cleared while a restore has a filter
    /// incomplete (its `rebuild` makes it exact). Returns how many port and peer words it wrote.
    @discardableResult
    public func refreshFilters(
        _ leftovers: inout PolicyFilterLeftovers, forEachKey: ((na_policy_key) -> Void) -> Void
    ) throws -> (portWords: Int, peerWords: Int) {
        defer { leftovers.removeAll() }
        guard !leftovers.isEmpty else { return (0, 0) }
        var written = (portWords: 0, peerWords: 0)
        if let ports, try ports.isComplete() {
            leftovers.clearScratch()
            forEachKey { key in
                let port = Self.portBit(key)
                if leftovers.portWordNoted(port / 64) { leftovers.markScratch(port) }
            }
            try portWrites.withLock { _ in
                for word in UInt32(0)..<UInt32(NA_POLICY_PORTS_WORDS) where leftovers.portWordNoted(word) {
                    if try ports.replace(word, leftovers.scratchWord(word)) { written.portWords += 1 }
                }
            }
        }
        guard let peers, try peers.isComplete() else { return written }
        let lines = UInt32(NA_POLICY_PEERS_WORDS / 8)
        for base in stride(from: UInt32(0), to: lines, by: Self.refreshLines) {
            let end = min(base + UInt32(Self.refreshLines), lines)
            guard (base..<end).contains(where: leftovers.peerLineNoted) else { continue }
            leftovers.clearScratch()
            forEachKey { key in
                let port = Self.portBit(key)
                let line = na_policy_peer_line(port)
                guard line >= base, line < end, leftovers.peerLineNoted(line) else { return }
                let identity = UInt32(bigEndian: key.identity)
                for which in UInt32(0)...1 {
                    leftovers.markScratch(na_policy_peer_bit(port, identity, which), fromWord: base * 8)
                }
            }
            try portWrites.withLock { _ in
                for line in base..<end where leftovers.peerLineNoted(line) {
                    for word in line * 8..<line * 8 + 8
                    where try peers.replace(word, leftovers.scratchWord(word, fromWord: base * 8)) {
                        written.peerWords += 1
                    }
                }
            }
        }
        return written
    }

    /// How many `na_ptable_peers` lines one pass of `refreshFilters` computes (8 words each: 64 KiB of them).
    public static let refreshLines = 1024

    /// `rebuild` from every endpoint's full-length entries at hand (tests and benchmarks).
    @discardableResult
    public func rebuild(_ endpoints: [UInt32: [(key: na_policy_key, value: na_policy_value)]]) throws -> Int {
        try rebuild(
            Array(endpoints.keys),
            holds: { id, key, value in
                endpoints[id]?.contains { bytesOf($0.key) == bytesOf(key) && bytesOf($0.value) == bytesOf(value) }
                    ?? false
            }, entries: { endpoints[$0] ?? [] })
    }

    /// The bits `na_ptable_ports` has set (as `na_policy_port_bit` packs direction, protocol class and port), and
    /// whether it is complete.
    public func namedPorts() throws -> (bits: [UInt32], complete: Bool) {
        try ports?.read() ?? ([], false)
    }

    /// The bits `na_ptable_peers` has set (as `na_policy_peer_bit` places them), and whether it is complete.
    public func namedPeers() throws -> (bits: [UInt32], complete: Bool) {
        try peers?.read() ?? ([], false)
    }

    /// The buckets whose overflow bit is set.
    public func overflowedBuckets() throws -> [UInt32] {
        try overflows.read().bits
    }

    /// An entry as the endpoint's hash holds it: its full-length key and its value.
    public static func policy(of entry: na_policy_table_entry) -> (key: na_policy_key, value: na_policy_value) {
        let key = na_policy_key(
            prefixlen: UInt32(NA_POLICY_PREFIX_PORT), identity: entry.identity.bigEndian,
            direction: UInt8((entry.meta >> 24) & 1), protocol: UInt8((entry.meta >> 16) & 0xff),
            dport: UInt16(entry.meta & 0xffff))
        let value = na_policy_value(
            rule_id: entry.rule_id,
            flags: entry.meta & UInt32(NA_POLICY_TABLE_DENY) != 0 ? UInt32(NA_POLICY_DENY) : 0)
        return (key, value)
    }

    /// A bucket's valid entries (`value`: the bucket's bytes, as a map dump gives them).
    public static func validEntries(ofBucket value: [UInt8]) -> [na_policy_table_entry] {
        BucketTable<na_policy_table_entry>.entries(ofBucket: value).filter {
            $0.meta & UInt32(NA_POLICY_TABLE_VALID) != 0
        }
    }

    /// The valid blocks, by slot (nil for an object without them).
    public func validBlocks() throws -> [(slot: UInt32, block: na_policy_block)] {
        try blocks?.validBlocks() ?? []
    }

    /// The valid entries: endpoint, peer identity, direction, protocol, port, rule and whether it denies.
    public func entries() throws -> [na_policy_table_entry] {
        try table.validEntries().map(\.entry)
    }
}
