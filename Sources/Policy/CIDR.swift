/// An IPv4 or IPv6 prefix, parsed without the C library so the module stays pure Swift.
public struct CIDR: Hashable, Sendable {
    public enum Family: Sendable { case ipv4, ipv6 }

    public let family: Family
    /// 4 or 16 bytes, network order, bits beyond the prefix cleared.
    public let address: [UInt8]
    public let prefixLength: Int

    /// Parses `10.0.0.0/8`, `fd00::/64`, or a bare address (a host prefix: /32 or /128). Bits beyond the prefix
    /// are cleared (`10.0.0.1/8` is `10.0.0.0/8`), as Kubernetes and Cilium read such prefixes.
    public init(parsing text: String) throws(CIDRError) {
        var addressText = Substring(text)
        var prefixText: Substring?
        if let slash = text.firstIndex(of: "/") {
            addressText = text[..<slash]
            prefixText = text[text.index(after: slash)...]
        }
        let bytes: [UInt8]
        if addressText.contains(":") {
            guard let parsed = CIDR.parseIPv6(addressText) else {
                throw CIDRError("\(quoted(text)) is not an IPv6 prefix")
            }
            bytes = parsed
        } else {
            guard let parsed = CIDR.parseIPv4(addressText) else {
                throw CIDRError("\(quoted(text)) is not a CIDR prefix")
            }
            bytes = parsed
        }
        let maxBits = bytes.count * 8
        var length = maxBits
        if let prefixText {
            guard !prefixText.isEmpty, prefixText.count <= 3, prefixText.allSatisfy(\.isASCIIDigit),
                let value = Int(prefixText), value <= maxBits
            else {
                throw CIDRError("\(quoted(text)) has a bad prefix length (expected 0...\(maxBits))")
            }
            length = value
        }
        family = bytes.count == 4 ? .ipv4 : .ipv6
        address = CIDR.mask(bytes, length)
        prefixLength = length
    }

    /// True when every address of `other` is in this prefix.
    public func contains(_ other: CIDR) -> Bool {
        family == other.family && other.prefixLength >= prefixLength
            && CIDR.mask(other.address, prefixLength) == address
    }

    static func mask(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { i, byte in
            let bits = min(max(length - i * 8, 0), 8)
            return bits == 8 ? byte : byte & ~(UInt8(0xFF) >> bits)
        }
    }

    static func parseIPv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for part in parts {
            // No leading zeros: "010" is octal to some parsers and decimal to others.
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit),
                part == "0" || part.first != "0", let value = UInt8(part)
            else { return nil }
            out.append(value)
        }
        return out
    }

    static func parseIPv6(_ text: Substring) -> [UInt8]? {
        var groups: [UInt16] = []
        var gapAt: Int?
        var rest = text
        if rest.hasPrefix("::") {
            gapAt = 0
            rest = rest.dropFirst(2)
        }
        var tailIPv4: [UInt8]?
        while !rest.isEmpty {
            let end = rest.firstIndex(of: ":") ?? rest.endIndex
            let part = rest[..<end]
            if part.contains(".") {
                // An embedded IPv4 address ends the text.
                guard end == rest.endIndex, let v4 = parseIPv4(part) else { return nil }
                tailIPv4 = v4
                rest = rest[end...]
                break
            }
            guard !part.isEmpty, part.count <= 4, let value = UInt16(part, radix: 16),
                part.allSatisfy(\.isHexDigit)
            else { return nil }
            groups.append(value)
            rest = rest[end...]
            if rest.hasPrefix("::") {
                guard gapAt == nil else { return nil }
                gapAt = groups.count
                rest = rest.dropFirst(2)
            } else if rest.hasPrefix(":") {
                rest = rest.dropFirst()
                if rest.isEmpty { return nil }
            }
        }
        if let v4 = tailIPv4 {
            groups.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
            groups.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
        }
        if let gapAt {
            guard groups.count < 8 else { return nil }
            groups.insert(contentsOf: Array(repeating: 0, count: 8 - groups.count), at: gapAt)
        }
        guard groups.count == 8 else { return nil }
        return groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
}

extension CIDR: CustomStringConvertible {
    /// Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run compressed), with the prefix.
    public var description: String {
        if family == .ipv4 { return address.map(String.init).joined(separator: ".") + "/\(prefixLength)" }
        let groups = stride(from: 0, to: 16, by: 2).map { UInt16(address[$0]) << 8 | UInt16(address[$0 + 1]) }
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
        let text = best.map { hex(0..<$0.lowerBound) + "::" + hex($0.upperBound..<8) } ?? hex(0..<8)
        return text + "/\(prefixLength)"
    }
}

/// Why a prefix did not parse.
public struct CIDRError: Error, Sendable {
    public let reason: String
    init(_ reason: String) { self.reason = reason }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
