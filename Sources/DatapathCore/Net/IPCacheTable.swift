import AgentAPI
import CNodeABI

/// An entry of a family's ipcache table (`na_ipcache_v4`, `na_ipcache_v6`): its identity word, with the valid and
/// stale bits both tables share, and its address as the programs compare it.
protocol IPCacheTableEntry {
    static var tableName: String { get }
    static var ways: Int { get }
    /// The bucket the programs look in for `address`; nil for an address of the other family.
    static func bucket(of address: IPAddress) -> UInt32?
    init?(identity: UInt32, address: IPAddress)
    var identity: UInt32 { get set }
    var address: IPAddress { get }
}

extension na_ipcache_v4_entry: IPCacheTableEntry {
    static let tableName = "na_ipcache_v4"
    static let ways = Int(NA_IPCACHE_V4_WAYS)

    static func bucket(of address: IPAddress) -> UInt32? { address.ipcacheV4Word.map(na_ipcache_v4_bucket_of) }

    init?(identity: UInt32, address: IPAddress) {
        guard let word = address.ipcacheV4Word else { return nil }
        self.init(identity: identity, addr: word)
    }

    var address: IPAddress { IPAddress(ipcacheV4Word: addr) }
}

extension na_ipcache_v6_entry: IPCacheTableEntry {
    static let tableName = "na_ipcache_v6"
    static let ways = Int(NA_IPCACHE_V6_WAYS)

    static func bucket(of address: IPAddress) -> UInt32? {
        address.ipcacheV6Words.map { na_ipcache_v6_bucket_of($0.0, $0.1, $0.2, $0.3) }
    }

    init?(identity: UInt32, address: IPAddress) {
        guard let words = address.ipcacheV6Words else { return nil }
        self.init(identity: identity, addr: words)
    }

    var address: IPAddress { IPAddress(ipcacheV6Words: addr) }
}

/// A family's host entries of `na_ipcache_host` again, in 64-byte buckets that the address's hash picks (eight
/// IPv4 or three IPv6 entries to a bucket). A new connection to a known peer then costs the datapath one cold
/// bucket instead of a hash bucket and its element (~400 ns at 100,000 peers, BENCHMARKS.md §2). The hash stays the
/// entries' home: an address a full bucket has no room for lives there only, and programs look there on a miss.
/// How entries are filled and withdrawn while packets read them: `BucketTable`. Only `IPCache` writes it, after the
/// hash on a set and before it on a removal.
struct IPCacheTable<Entry: IPCacheTableEntry & BitwiseCopyable> {
    static var name: String { Entry.tableName }

    private let table: BucketTable<Entry>

    init(_ map: BPFMap) throws {
        table = try BucketTable(
            map, ways: Entry.ways, word: \.identity, valid: UInt32(NA_IPCACHE_V4_VALID),
            stale: UInt32(NA_IPCACHE_V4_STALE))
    }

    /// Identities a table entry can hold: not 0 (a miss to the programs) and below the flag bits.
    static func fits(_ identity: UInt32) -> Bool {
        identity != 0 && identity <= UInt32(NA_IPCACHE_V4_IDENTITY_MASK)
    }

    /// The address's entry says `identity` (an entry of another identity is withdrawn). An identity the table
    /// cannot hold, or a full bucket, leaves the address to the hash; an address of the other family is not here.
    func set(_ address: IPAddress, identity: UInt32) throws {
        guard let index = Entry.bucket(of: address), let entry = Entry(identity: identity, address: address) else {
            return
        }
        guard Self.fits(identity) else { return try table.remove(index) { $0.address == address } }
        try table.set(index, entry) { $0.address == address }
    }

    /// The address has no valid entry any more (before the hash loses it, so the programs find it there meanwhile).
    func remove(_ address: IPAddress) throws {
        guard let index = Entry.bucket(of: address) else { return }
        try table.remove(index) { $0.address == address }
    }

    /// The valid entries: address and identity.
    func entries() throws -> [(address: IPAddress, identity: UInt32)] {
        try table.validEntries().map { Self.decoded($0.entry) }
    }

    /// A bucket's valid entries (`value`: the bucket's bytes, as a map dump gives them).
    static func validEntries(ofBucket value: [UInt8]) -> [(address: IPAddress, identity: UInt32)] {
        BucketTable<Entry>.entries(ofBucket: value).filter { $0.identity & UInt32(NA_IPCACHE_V4_VALID) != 0 }
            .map(decoded)
    }

    private static func decoded(_ entry: Entry) -> (address: IPAddress, identity: UInt32) {
        (entry.address, entry.identity & UInt32(NA_IPCACHE_V4_IDENTITY_MASK))
    }

    /// Makes the valid entries exactly `wanted` (address → identity, the hash's host entries of the family), as far
    /// as buckets have room: at start, over what an earlier agent left. Entries that differ, sit in another bucket
    /// than their address's or appear twice are withdrawn, and missing ones filled. Returns how many it withdrew or
    /// filled.
    @discardableResult
    func sync(_ wanted: [IPAddress: UInt32]) throws -> Int {
        var kept = Set<IPAddress>()
        var changed = try table.prune { index, entry in
            let address = entry.address
            let identity = entry.identity & UInt32(NA_IPCACHE_V4_IDENTITY_MASK)
            guard wanted[address] == identity, Entry.bucket(of: address) == index else { return false }
            return kept.insert(address).inserted
        }
        let missing = wanted.compactMap { address, identity -> BucketTable<Entry>.Change? in
            guard !kept.contains(address), Self.fits(identity), let index = Entry.bucket(of: address),
                let entry = Entry(identity: identity, address: address)
            else { return nil }
            return BucketTable<Entry>.Change(bucket: index, entry: entry, matches: { $0.address == address })
        }
        changed += try table.apply(missing).count { $0 }
        return changed
    }
}
