/// Addresses as the datapath's map keys hold them: 16 bytes, IPv4 in the first four, with a family byte beside.
extension IPAddress {
    /// From a 16-byte key field and the family byte the datapath stored beside it.
    public init?(familyByte: UInt8, key: [UInt8]) {
        guard let family = Family(rawValue: familyByte) else { return nil }
        self.init(family: family, bytes: key)
    }

    /// The 16-byte form used in map keys.
    public var keyBytes: [UInt8] { bytes + [UInt8](repeating: 0, count: 16 - bytes.count) }
}
