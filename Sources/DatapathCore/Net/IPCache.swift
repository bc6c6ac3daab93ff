import AgentAPI
import CNodeABI

/// The ipcache, the one writer of which identity an address or prefix has: `na_ipcache` (the LPM trie, every
/// entry) and `na_ipcache_host` (host entries again, so the datapath resolves a known peer with one hash lookup
/// instead of a trie walk that deepens with the number of entries). Every write and delete goes through here so the
/// two never disagree: a host entry in the hash, when there, is the trie's.
public struct IPCache {
    public static let trieName = "na_ipcache"
    public static let hostName = "na_ipcache_host"

    private let trie: TypedMap<na_ipcache_key, na_ipcache_value>
    private let hosts: TypedMap<na_ipcache_key, na_ipcache_value>

    public init(datapath: Datapath) throws {
        try self.init(trie: datapath.map(Self.trieName), hosts: datapath.map(Self.hostName))
    }

    /// Over the two maps of a loaded object (benchmarks and tests that load one without a `Datapath`).
    public init(trie: BPFMap, hosts: BPFMap) throws {
        self.trie = try TypedMap(trie)
        self.hosts = try TypedMap(hosts)
    }

    public static func key(_ address: IPAddress, prefix: Int? = nil) -> na_ipcache_key {
        na_ipcache_key(IPPrefix(address: address, length: prefix ?? address.bitLength))
    }

    public func set(_ address: IPAddress, prefix: Int? = nil, identity: UInt32) throws {
        try set(IPPrefix(address: address, length: prefix ?? address.bitLength), identity: identity)
    }

    /// Trie first: until the hash has the entry, the datapath finds it there.
    public func set(_ prefix: IPPrefix, identity: UInt32) throws {
        var value = na_ipcache_value()
        value.identity = identity
        let key = na_ipcache_key(prefix)
        try trie.update(key, value)
        guard prefix.length == prefix.address.bitLength else { return }
        do {
            try hosts.update(key, value)
        } catch {
            // A previous identity left in the hash would win over the trie's new one: fall back to the trie.
            _ = try? hosts.delete(key)
            throw error
        }
    }

    public func remove(_ address: IPAddress, prefix: Int? = nil) throws {
        try remove(IPPrefix(address: address, length: prefix ?? address.bitLength))
    }

    /// Hash first: the trie alone never answers for an entry the hash still holds.
    public func remove(_ prefix: IPPrefix) throws {
        let key = na_ipcache_key(prefix)
        if prefix.length == prefix.address.bitLength { try hosts.delete(key) }
        try trie.delete(key)
    }

    /// The entry for exactly this address (a host entry), not a covering prefix.
    public func lookupExact(_ address: IPAddress) throws -> UInt32? {
        try trie.lookup(Self.key(address))?.identity
    }

    /// The trie's every entry: prefixes and host entries.
    public func entries() throws -> [(prefix: IPPrefix, identity: UInt32)] {
        try trie.entries().compactMap { entry in entry.key.prefix.map { ($0, entry.value.identity) } }
    }

    /// Makes the hash hold exactly the trie's host entries: at start, after pins of an agent that wrote only the
    /// trie (upgrade) or a crash between the two writes. Returns how many hash entries it added, changed or removed.
    @discardableResult
    public func syncHostEntries() throws -> Int {
        var wanted: [[UInt8]: (key: na_ipcache_key, value: na_ipcache_value)] = [:]
        for (key, value) in try trie.entries() {
            guard let prefix = key.prefix, prefix.length == prefix.address.bitLength else { continue }
            wanted[bytesOf(key)] = (key, value)
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
        return changed
    }
}
