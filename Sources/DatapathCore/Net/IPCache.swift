import AgentAPI
import CNodeABI

/// The ipcache, the one writer of which identity an address or prefix has: `na_ipcache` (the LPM trie, every
/// entry), `na_ipcache_host` (host entries again, so the datapath resolves a known peer with one hash lookup
/// instead of a trie walk that deepens with the number of entries) and `na_ipcache_v4` and `na_ipcache_v6` (host
/// entries once more, a cache line per bucket: `IPCacheTable`). Every write and delete goes through here so they
/// never disagree: a host entry in the hash, when there, is the trie's, and a valid one in a table is the hash's.
public struct IPCache {
    public static let trieName = "na_ipcache"
    public static let hostName = "na_ipcache_host"
    public static let v4Name = IPCacheTable<na_ipcache_v4_entry>.name
    public static let v6Name = IPCacheTable<na_ipcache_v6_entry>.name

    private let trie: TypedMap<na_ipcache_key, na_ipcache_value>
    private let hosts: TypedMap<na_ipcache_key, na_ipcache_value>
    private let v4: IPCacheTable<na_ipcache_v4_entry>?
    private let v6: IPCacheTable<na_ipcache_v6_entry>?

    public init(datapath: Datapath) throws {
        try self.init(
            trie: datapath.map(Self.trieName), hosts: datapath.map(Self.hostName), v4: datapath.map(Self.v4Name),
            v6: datapath.map(Self.v6Name))
    }

    /// Over the maps of a loaded object (benchmarks and tests that load one without a `Datapath`; objects from
    /// before the tables have no `v4` or `v6`).
    public init(trie: BPFMap, hosts: BPFMap, v4: BPFMap?, v6: BPFMap?) throws {
        self.trie = try TypedMap(trie)
        self.hosts = try TypedMap(hosts)
        self.v4 = try v4.map { try IPCacheTable($0) }
        self.v6 = try v6.map { try IPCacheTable($0) }
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
            try? removeFromTable(prefix.address)
            _ = try? hosts.delete(key)
            throw error
        }
        switch prefix.address.family {
        case .ipv4: try v4?.set(prefix.address, identity: identity)
        case .ipv6: try v6?.set(prefix.address, identity: identity)
        }
    }

    private func removeFromTable(_ address: IPAddress) throws {
        switch address.family {
        case .ipv4: try v4?.remove(address)
        case .ipv6: try v6?.remove(address)
        }
    }

    public func remove(_ address: IPAddress, prefix: Int? = nil) throws {
        try remove(IPPrefix(address: address, length: prefix ?? address.bitLength))
    }

    /// Table, then hash: the trie alone never answers for an entry the hash still holds, nor the hash for one the
    /// table still holds.
    public func remove(_ prefix: IPPrefix) throws {
        let key = na_ipcache_key(prefix)
        if prefix.length == prefix.address.bitLength {
            try removeFromTable(prefix.address)
            try hosts.delete(key)
        }
        try trie.delete(key)
    }

    /// The host entries the tables hold valid, IPv4 then IPv6 (the rest of them are in the hash only).
    public func tableEntries() throws -> [(address: IPAddress, identity: UInt32)] {
        try (v4?.entries() ?? []) + (v6?.entries() ?? [])
    }

    /// The valid entries of one bucket of a family's table (map dumps: `value` is the bucket's bytes).
    public static func tableEntries(
        ofBucket value: [UInt8], family: IPAddress.Family
    ) -> [(address: IPAddress, identity: UInt32)] {
        switch family {
        case .ipv4: IPCacheTable<na_ipcache_v4_entry>.validEntries(ofBucket: value)
        case .ipv6: IPCacheTable<na_ipcache_v6_entry>.validEntries(ofBucket: value)
        }
    }

    /// The entry for exactly this address (a host entry), not a covering prefix.
    public func lookupExact(_ address: IPAddress) throws -> UInt32? {
        try trie.lookup(Self.key(address))?.identity
    }

    /// The trie's every entry: prefixes and host entries.
    public func entries() throws -> [(prefix: IPPrefix, identity: UInt32)] {
        try trie.entries().compactMap { entry in entry.key.prefix.map { ($0, entry.value.identity) } }
    }

    /// Makes the hash hold exactly the trie's host entries, and each family's table the ones it has room for: at
    /// start, after pins of an agent that wrote only the trie or had no table of a family (upgrade) or a crash
    /// between two writes. Returns how many hash and table entries it added, changed or removed.
    @discardableResult
    public func syncHostEntries() throws -> Int {
        var wanted: [[UInt8]: (key: na_ipcache_key, value: na_ipcache_value)] = [:]
        var tables: [IPAddress.Family: [IPAddress: UInt32]] = [:]
        for (key, value) in try trie.entries() {
            guard let prefix = key.prefix, prefix.length == prefix.address.bitLength else { continue }
            wanted[bytesOf(key)] = (key, value)
            tables[prefix.address.family, default: [:]][prefix.address] = value.identity
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
        if let v4 { changed += try v4.sync(tables[.ipv4] ?? [:]) }
        if let v6 { changed += try v6.sync(tables[.ipv6] ?? [:]) }
        return changed
    }
}
