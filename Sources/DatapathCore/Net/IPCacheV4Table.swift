import AgentAPI
import CNodeABI

/// `na_ipcache_v4`: the IPv4 host entries of `na_ipcache_host` again, eight to a 64-byte bucket that the
/// address's hash picks (`na_ipcache_v4_bucket_of`). A new connection to a known peer then costs the datapath one
/// cold bucket instead of a hash bucket and its element (~400 ns at 100,000 peers, BENCHMARKS.md §2). The hash stays
/// the entries' home: an address a full bucket has no room for lives there only, and programs look there on a miss.
/// How entries are filled and withdrawn while packets read them: `BucketTable`. Only `IPCache` writes it, after the
/// hash on a set and before it on a removal.
struct IPCacheV4Table {
    static let name = "na_ipcache_v4"

    private let table: BucketTable<na_ipcache_v4_entry>

    init(_ map: BPFMap) throws {
        table = try BucketTable(
            map, ways: Int(NA_IPCACHE_V4_WAYS), word: \.identity, valid: UInt32(NA_IPCACHE_V4_VALID),
            stale: UInt32(NA_IPCACHE_V4_STALE))
    }

    /// Identities a table entry can hold: not 0 (a miss to the programs) and below the flag bits.
    static func fits(_ identity: UInt32) -> Bool {
        identity != 0 && identity <= UInt32(NA_IPCACHE_V4_IDENTITY_MASK)
    }

    /// The address's entry says `identity` (an entry of another identity is withdrawn). An identity the table
    /// cannot hold, or a full bucket, leaves the address to the hash.
    func set(_ address: IPAddress, identity: UInt32) throws {
        guard let word = address.ipcacheV4Word else { return }
        let index = na_ipcache_v4_bucket_of(word)
        guard Self.fits(identity) else { return try table.remove(index) { $0.addr == word } }
        try table.set(index, na_ipcache_v4_entry(identity: identity, addr: word)) { $0.addr == word }
    }

    /// The address has no valid entry any more (before the hash loses it, so the programs find it there meanwhile).
    func remove(_ address: IPAddress) throws {
        guard let word = address.ipcacheV4Word else { return }
        try table.remove(na_ipcache_v4_bucket_of(word)) { $0.addr == word }
    }

    /// The valid entries: address and identity.
    func entries() throws -> [(address: IPAddress, identity: UInt32)] {
        try table.validEntries().map { Self.decoded($0.entry) }
    }

    /// A bucket's valid entries (`value`: the bucket's bytes, as a map dump gives them).
    static func validEntries(ofBucket value: [UInt8]) -> [(address: IPAddress, identity: UInt32)] {
        BucketTable<na_ipcache_v4_entry>.entries(ofBucket: value).filter {
            $0.identity & UInt32(NA_IPCACHE_V4_VALID) != 0
        }
        .map(decoded)
    }

    private static func decoded(_ entry: na_ipcache_v4_entry) -> (address: IPAddress, identity: UInt32) {
        (IPAddress(ipcacheV4Word: entry.addr), entry.identity & UInt32(NA_IPCACHE_V4_IDENTITY_MASK))
    }

    /// Makes the valid entries exactly `wanted` (address word → identity, the hash's IPv4 host entries), as far as
    /// buckets have room: at start, over what an earlier agent left. Entries that differ, sit in another bucket
    /// than their address's or appear twice are withdrawn, and missing ones filled. Returns how many it withdrew or
    /// filled.
    @discardableResult
    func sync(_ wanted: [UInt32: UInt32]) throws -> Int {
        var kept = Set<UInt32>()
        var changed = try table.prune { index, entry in
            let identity = entry.identity & UInt32(NA_IPCACHE_V4_IDENTITY_MASK)
            guard wanted[entry.addr] == identity, na_ipcache_v4_bucket_of(entry.addr) == index else { return false }
            return kept.insert(entry.addr).inserted
        }
        let missing = wanted.filter { !kept.contains($0.key) && Self.fits($0.value) }.map { word, identity in
            BucketTable<na_ipcache_v4_entry>.Change(
                bucket: na_ipcache_v4_bucket_of(word), entry: na_ipcache_v4_entry(identity: identity, addr: word),
                matches: { $0.addr == word })
        }
        changed += try table.apply(missing).count { $0 }
        return changed
    }
}
