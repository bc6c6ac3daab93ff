import Glibc

/// An IPv4 or IPv6 address as the datapath keys hold it: 16 bytes, IPv4 in the first four.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public enum Family: UInt8, Sendable {
        case ipv4 = 2
        case ipv6 = 10
    }

    public let family: Family
    /// 4 bytes for IPv4, 16 for IPv6, network order.
    public let bytes: [UInt8]

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (no prefix, no zone).
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            family = .ipv4
            bytes = withUnsafeBytes(of: v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            family = .ipv6
            bytes = withUnsafeBytes(of: v6) { Array($0) }
            return
        }
        return nil
    }

    public init(family: Family, bytes: [UInt8]) {
        self.family = family
        self.bytes = Array(bytes.prefix(family == .ipv4 ? 4 : 16))
    }

    /// From a 16-byte key field and the family byte the datapath stored beside it.
    public init?(familyByte: UInt8, key: [UInt8]) {
        guard let family = Family(rawValue: familyByte) else { return nil }
        self.init(family: family, bytes: key)
    }

    /// The 16-byte form used in map keys.
    public var keyBytes: [UInt8] { bytes + [UInt8](repeating: 0, count: 16 - bytes.count) }

    public var bitLength: Int { family == .ipv4 ? 32 : 128 }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let af = family == .ipv4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(af, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        return String(cString: buffer)
    }

    public var isLinkLocal: Bool {
        family == .ipv6 ? bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 : bytes[0] == 169 && bytes[1] == 254
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        a.family.rawValue != b.family.rawValue
            ? a.family.rawValue < b.family.rawValue : a.bytes.lexicographicallyPrecedes(b.bytes)
    }
}

/// Fixed-size C arrays (imported as tuples) to and from byte arrays.
public func tupleBytes<T>(_ tuple: T) -> [UInt8] {
    withUnsafeBytes(of: tuple) { Array($0) }
}

public func setTupleBytes<T>(_ tuple: inout T, _ bytes: [UInt8]) {
    withUnsafeMutableBytes(of: &tuple) { raw in
        for index in 0..<min(raw.count, bytes.count) { raw[index] = bytes[index] }
    }
}
