/// An IPv4 or IPv6 address: the one address type of the API, policies and the datapath.
///
/// Parsed and printed in pure Swift, so the text rules are ours rather than the C library's and every module
/// (Policy included) can use it: strict parsing (`IPAddress+Parsing.swift`), RFC 5952 text (`description`).
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The raw values are Linux's AF_INET and AF_INET6, the family byte the datapath stores beside an address.
    public enum Family: UInt8, Sendable {
        case ipv4 = 2
        case ipv6 = 10
    }

    public let family: Family
    /// 4 bytes for IPv4, 16 for IPv6, network order.
    public let bytes: [UInt8]

    public init(family: Family, bytes: [UInt8]) {
        self.family = family
        self.bytes = Array(bytes.prefix(family == .ipv4 ? 4 : 16))
    }

    public var bitLength: Int { family == .ipv4 ? 32 : 128 }

    public var isLinkLocal: Bool {
        family == .ipv6 ? bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 : bytes[0] == 169 && bytes[1] == 254
    }

    /// Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, no leading zeros, the longest run of two or more
    /// zero groups compressed, the first of equal runs). An IPv4-mapped address keeps its IPv4 address dotted
    /// (`::ffff:10.0.0.1`), as RFC 5952 section 5 recommends, and so does an IPv4-compatible one (`::10.0.0.1`):
    /// the same text as the C library's `inet_ntop`, which the API's addresses always had.
    public var description: String {
        if family == .ipv4 { return bytes.map(String.init).joined(separator: ".") }
        let groups = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        var best: Range<Int>?
        var i = 0
        while i < 8 {
            guard groups[i] == 0 else {
                i += 1
                continue
            }
            var j = i
            while j < 8 && groups[j] == 0 { j += 1 }
            if j - i >= 2 && (best == nil || j - i > best!.count) { best = i..<j }
            i = j
        }
        let hex = { (range: Range<Int>) in groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
        if let run = best, run.lowerBound == 0, run.count == 6 || (run.count == 5 && groups[5] == 0xffff) {
            let dotted = bytes[12...].map(String.init).joined(separator: ".")
            return run.count == 6 ? "::" + dotted : "::ffff:" + dotted
        }
        return best.map { hex(0..<$0.lowerBound) + "::" + hex($0.upperBound..<8) } ?? hex(0..<8)
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        a.family.rawValue != b.family.rawValue
            ? a.family.rawValue < b.family.rawValue : a.bytes.lexicographicallyPrecedes(b.bytes)
    }
}
