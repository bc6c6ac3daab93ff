/// IP protocol numbers and the names the API spells them with: the one table policies, traces, flows, conntrack,
/// NAT and map dumps share.
public enum IPProtocol {
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let icmpv6: UInt8 = 58
    public static let sctp: UInt8 = 132

    /// Number 0 in a policy key means any protocol.
    private static let named: [(UInt8, String)] = [
        (0, "ANY"), (icmp, "ICMP"), (tcp, "TCP"), (udp, "UDP"), (icmpv6, "ICMPv6"), (sctp, "SCTP"),
    ]

    /// "TCP", "ICMPv6", "ANY" for 0, or the decimal number for others.
    public static func name(of number: UInt8) -> String {
        named.first { $0.0 == number }?.1 ?? String(number)
    }

    /// A name in any case ("tcp", "ICMPv6", "any") or a decimal number 0–255; nil otherwise.
    public static func number(of text: String) -> UInt8? {
        if let known = named.first(where: { $0.1.uppercased() == text.uppercased() }) { return known.0 }
        return text.allSatisfy(\.isASCIIDigit) ? UInt8(text) : nil
    }

    public static func isICMP(_ number: UInt8) -> Bool { number == icmp || number == icmpv6 }
}
