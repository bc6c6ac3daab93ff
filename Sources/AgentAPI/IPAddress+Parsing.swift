/// Address text as policies, the API and configuration give it: the strictest reading of Cilium's, Kubernetes'
/// and the C library's, on ASCII bytes, so no sign, space, zone or Unicode digit ever passes.
extension IPAddress {
    /// Parses a dotted quad (`10.0.0.1`, no leading zeros: `010` is octal to some parsers and decimal to others)
    /// or RFC 4291 IPv6 text (`fd00::1`, `::ffff:10.0.0.1`; no zone, no prefix).
    public init?(_ text: String) {
        let utf8 = Array(text.utf8)[...]
        if utf8.contains(ASCII.colon) {
            guard let bytes = Self.parseIPv6(utf8) else { return nil }
            self.init(family: .ipv6, bytes: bytes)
        } else {
            guard let bytes = Self.parseIPv4(utf8) else { return nil }
            self.init(family: .ipv4, bytes: bytes)
        }
    }

    static func parseIPv4(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        let parts = text.split(separator: ASCII.dot, omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for part in parts {
            guard let value = decimal(part, maxDigits: 3), value <= 255, part.count == 1 || part.first != ASCII.zero
            else { return nil }
            out.append(UInt8(value))
        }
        return out
    }

    static func parseIPv6(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        var groups: [UInt16] = []
        var gapAt: Int?
        var rest = text
        if rest.starts(with: [ASCII.colon, ASCII.colon]) {
            gapAt = 0
            rest = rest.dropFirst(2)
        }
        while !rest.isEmpty {
            let end = rest.firstIndex(of: ASCII.colon) ?? rest.endIndex
            let part = rest[..<end]
            if part.contains(ASCII.dot) {
                // An embedded IPv4 address ends the text.
                guard end == rest.endIndex, let v4 = parseIPv4(part) else { return nil }
                groups += [UInt16(v4[0]) << 8 | UInt16(v4[1]), UInt16(v4[2]) << 8 | UInt16(v4[3])]
                break
            }
            guard let value = hexGroup(part) else { return nil }
            groups.append(value)
            rest = rest[end...]
            if rest.starts(with: [ASCII.colon, ASCII.colon]) {
                guard gapAt == nil else { return nil }
                gapAt = groups.count
                rest = rest.dropFirst(2)
            } else if rest.first == ASCII.colon {
                rest = rest.dropFirst()
                if rest.isEmpty { return nil }
            }
        }
        if let gapAt {
            guard groups.count < 8 else { return nil }
            groups.insert(contentsOf: Array(repeating: 0, count: 8 - groups.count), at: gapAt)
        }
        guard groups.count == 8 else { return nil }
        return groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    /// 1 to `maxDigits` ASCII decimal digits.
    static func decimal(_ digits: ArraySlice<UInt8>, maxDigits: Int) -> Int? {
        guard !digits.isEmpty, digits.count <= maxDigits else { return nil }
        var value = 0
        for c in digits {
            guard (ASCII.zero...ASCII.nine).contains(c) else { return nil }
            value = value * 10 + Int(c - ASCII.zero)
        }
        return value
    }

    /// 1 to 4 ASCII hex digits, either case.
    private static func hexGroup(_ digits: ArraySlice<UInt8>) -> UInt16? {
        guard !digits.isEmpty, digits.count <= 4 else { return nil }
        var value: UInt16 = 0
        for c in digits {
            let nibble: UInt8
            switch c {
            case ASCII.zero...ASCII.nine: nibble = c - ASCII.zero
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt16(nibble)
        }
        return value
    }
}

private enum ASCII {
    static let colon = UInt8(ascii: ":")
    static let dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")
}
