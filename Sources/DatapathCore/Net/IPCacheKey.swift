import CNodeABI

/// The ipcache's LPM key (`struct na_ipcache_key`): a family byte and the address, with a prefix length counted
/// past NA_IPCACHE_PREFIX_BASE so one family's entries never match another's. Every map keyed this way (the
/// ipcache, NAT's cluster prefixes) builds and reads its keys here.
extension na_ipcache_key {
    public init(_ prefix: IPPrefix) {
        self.init()
        family = prefix.address.family.rawValue
        prefixlen = UInt32(NA_IPCACHE_PREFIX_BASE) + UInt32(prefix.length)
        setTupleBytes(&addr, prefix.address.keyBytes)
    }

    /// The key of a single address (a /32 or /128).
    public init(_ address: IPAddress) {
        self.init(IPPrefix(address: address, length: address.bitLength))
    }

    /// The prefix the key stands for; nil for a family or length no key of ours carries.
    public var prefix: IPPrefix? {
        guard let address = IPAddress(familyByte: family, key: tupleBytes(addr)) else { return nil }
        return IPPrefix(address: address, length: Int(prefixlen) - Int(NA_IPCACHE_PREFIX_BASE))
    }
}
