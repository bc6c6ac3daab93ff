/// An IP prefix (`10.0.0.0/8`, `fd00::/64`), bits beyond its length cleared: policies' CIDRs, IPAM pools and the
/// ipcache's keys alike.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    /// Why a prefix did not parse: a predicate ("is not a CIDR prefix") for the caller to put after the text,
    /// quoted as its messages quote.
    public struct ParseError: Error, Sendable {
        public let reason: String
    }

    /// Parses `10.0.0.0/8`, `fd00::/64`, or a bare address (a host prefix: /32 or /128). Bits beyond the prefix
    /// are cleared (`10.0.0.1/8` is `10.0.0.0/8`), as Kubernetes and Cilium read such prefixes. The length is 1 to 3
    /// ASCII digits, no sign.
    public init(parsing text: String) throws(ParseError) {
        var addressText = Substring(text)
        var lengthText: Substring?
        if let slash = text.firstIndex(of: "/") {
            addressText = text[..<slash]
            lengthText = text[text.index(after: slash)...]
        }
        guard let address = IPAddress(String(addressText)) else {
            let kind = addressText.contains(":") ? "an IPv6 prefix" : "a CIDR prefix"
            throw ParseError(reason: "is not \(kind)")
        }
        var length = address.bitLength
        if let lengthText {
            guard let value = IPAddress.decimal(Array(lengthText.utf8)[...], maxDigits: 3), value <= length else {
                throw ParseError(reason: "has a bad prefix length (expected 0...\(address.bitLength))")
            }
            length = value
        }
        self.init(address: address, length: length)
    }

    /// `init(parsing:)` for callers that give their own message.
    public init?(_ text: String) {
        guard let prefix = try? IPPrefix(parsing: text) else { return nil }
        self = prefix
    }

    public init(address: IPAddress, length: Int) {
        let masked = address.bytes.enumerated().map { index, byte -> UInt8 in
            let bits = min(max(length - index * 8, 0), 8)
            return bits == 8 ? byte : byte & ~(UInt8(0xFF) >> bits)
        }
        self.address = IPAddress(family: address.family, bytes: masked)
        self.length = length
    }

    public var family: IPAddress.Family { address.family }

    /// The address and length in canonical text (`IPAddress.description`).
    public var description: String { "\(address)/\(length)" }

    public func contains(_ other: IPAddress) -> Bool {
        other.family == address.family && IPPrefix(address: other, length: length).address == address
    }

    /// True when every address of `other` is in this prefix.
    public func contains(_ other: IPPrefix) -> Bool {
        other.length >= length && contains(other.address)
    }
}
