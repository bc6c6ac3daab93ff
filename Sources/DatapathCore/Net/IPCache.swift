import AgentAPI
import CNodeABI

/// The ipcache, the one writer of which identity an address or prefix has: `na_ipcache` (the LPM trie, every
/// entry), `na_ipcache_host` (host entries again, so the datapath resolves a known peer with one hash lookup
/// instead of a trie walk that deepens with the number of entries) and `na_ipcache_v4` (IPv4 host entries once
/// more, a cache line per bucket: `IPCacheV4Table`). Every write and delete goes through here so they never
/// disagree: a host entry in the hash, when there, is the trie's, and a valid one in the table is the hash's.
public struct IPCache {
    public static let trieName = "na_ipcache"
    public static let hostName = "na_ipcache_host"
    public static let v4Name = IPCacheV4Table.name

    private let trie: TypedMap<na_ipcache_key, na_ipcache_value>
    private let hosts: TypedMap<na_ipcache_key, na_ipcache_value>
    private let v4: IPCacheV4Table?

    public init(datapath: Datapath) throws {
        try self.init(
            trie: datapath.map(Self.trieName), hosts: datapath.map(Self.hostName), v4: datapath.map(Self.v4Name))
    }

    /// Over the maps of a loaded object (benchmarks and tests that load one without a `Datapath`; objects from
    /// before the table have no `v4`).
    public init(trie: BPFMap, hosts: BPFMap, v4: BPFMap?) throws {
        self.trie = try TypedMap(trie)
        self.hosts = try TypedMap(hosts)
        self.v4 = try v4.map { try IPCacheV4Table($0) }
    }

    public static func key(_ address: IPAddress, prefix: Int? = nil) -> na_ipcache_key {
        na_ipcache_key(IPPrefix(address: address, length: prefix ?? address.bitLength))
    }

    public func set(_ address: IPAddress, prefix: Int? = nil, identity: UInt32) throws {
        try set(IPPrefix(address: address, length: prefix ?? address.bitLength), identity: identity)
    }

    /// Trie first: until the hash has the entry, the datapath finds it there; then the table.
    public func set(_ prefix: IPPrefix, identity: UInt32) throws {
        var value = na_ipcache_value()
        value.identity = identity
        let key = na_ipcache_key(prefix)
        try trie.update(key, value)
        guard prefix.length == prefix.address.bitLength else { return }
        do {
            try hosts.update(key, value)
        } catch {
            // A previous identity left in the hash or table would win over the trie's new one: fall back to it.
            try? v4?.remove(prefix.address)
            _ = try? hosts.delete(key)
            throw error
        }
        try v4?.set(prefix.address, identity: identity)
    }

    public func remove(_ address: IPAddress, prefix: Int? = nil) throws {
        try remove(IPPrefix(address: address, length: prefix ?? address.bitLength))
    }

    /// Table, then hash: the trie alone never answers for an entry the hash still holds, nor the hash for one the
    /// table still holds.
    public func remove(_ prefix: IPPrefix) throws {
        let key = na_ipcache_key(prefix)
        if prefix.length == prefix.address.bitLength {
            try v4?.remove(prefix.address)
            try hosts.delete(key)
        }
        try trie.delete(key)
    }

    /// The IPv4 host entries the table holds valid (the rest of them are in the hash only).
    public func tableEntries() throws -> [(address: IPAddress, identity: UInt32)] {
        try v4?.entries() ?? []
    }

    /// The valid entries of one bucket of the table (map dumps: `value` is the bucket's bytes).
    public static func tableEntries(ofBucket value: [UInt8]) -> [(address: IPAddress, identity: UInt32)] {
        IPCacheV4Table.validEntries(ofBucket: value)
    }

    /// The entry for exactly this address (a host entry), not a covering prefix.
    public func lookupExact(_ address: IPAddress) throws -> UInt32? {
        try trie.lookup(Self.key(address))?.identity
    }

    /// The trie's every entry: prefixes and host entries.
    public func entries() throws -> [(prefix: IPPrefix, identity: UInt32)] {
        try trie.entries().compactMap { entry in entry.key.prefix.map { ($0, entry.value.identity) } }
    }

    /// Makes the hash hold exactly the trie's host entries, and the table the IPv4 ones it has room for: at start,
    /// after pins of an agent that wrote only the trie (upgrade) or a crash between two writes. Returns how many
    /// hash and table entries it added, changed or removed.
    @discardableResult
    public func syncHostEntries() throws -> Int {
        var wanted: [[UInt8]: (key: na_ipcache_key, value: na_ipcache_value)] = [:]
        var table: [UInt32: UInt32] = [:]
        for (key, value) in try trie.entries() {
            guard let prefix = key.prefix, prefix.length == prefix.address.bitLength else { continue }
            wanted[bytesOf(key)] = (key, value)
            if let word = prefix.address.ipcacheV4Word { table[word] = value.identity }
        }
        var changed = 0
        for (key, value) in try hosts.entries() {
            let bytes = bytesOf(key)
            if let want = wanted[bytes], want.value.identity == value.identity, want.value.flags == value.flags {
                wanted[bytes] = nil
            } else if wanted[bytes] == nil {
                try hosts.delete(key)
                changed += 1
            }
        }
        for (key, value) in wanted.values {
            try hosts.update(key, value)
            changed += 1
        }
        if let v4 { changed += try v4.sync(table) }
        return changed
    }
}
