/// Addresses as the datapath's map keys hold them: 16 bytes, IPv4 in the first four, with a family byte beside.
extension IPAddress {
    /// From a 16-byte key field and the family byte the datapath stored beside it.
    public init?(familyByte: UInt8, key: [UInt8]) {
        guard let family = Family(rawValue: familyByte) else { return nil }
        self.init(family: family, bytes: key)
    }

    /// The 16-byte form used in map keys.
    public var keyBytes: [UInt8] { bytes + [UInt8](repeating: 0, count: 16 - bytes.count) }

    /// An IPv4 address's four bytes as `na_ipcache_v4` entries hold them (loaded as the CPU loads them, as the
    /// programs load them from the packet); nil for IPv6.
    public var ipcacheV4Word: UInt32? {
        guard family == .ipv4, bytes.count == 4 else { return nil }
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
    }

    /// The IPv4 address whose `ipcacheV4Word` is `word`.
    public init(ipcacheV4Word word: UInt32) {
        self.init(family: .ipv4, bytes: withUnsafeBytes(of: word) { Array($0) })
    }

    /// An IPv6 address's sixteen bytes as `na_ipcache_v6` entries hold them: four words, each loaded as the CPU
    /// loads it; nil for IPv4.
    public var ipcacheV6Words: (UInt32, UInt32, UInt32, UInt32)? {
        guard family == .ipv6, bytes.count == 16 else { return nil }
        return bytes.withUnsafeBytes {
            (
                $0.loadUnaligned(fromByteOffset: 0, as: UInt32.self),
                $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self),
                $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self),
                $0.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
            )
        }
    }

    /// The IPv6 address whose `ipcacheV6Words` are `words`.
    public init(ipcacheV6Words words: (UInt32, UInt32, UInt32, UInt32)) {
        self.init(family: .ipv6, bytes: withUnsafeBytes(of: words) { Array($0) })
    }
}
