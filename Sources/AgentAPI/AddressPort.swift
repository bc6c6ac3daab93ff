/// An IP address and a port as people, URLs and `cilium-dbg service list` write them: `10.96.0.10:80`,
/// `[fd00::a]:80`. The agent reads service frontends in filters with it and nodectl reads `--frontend` and
/// `--backends`, so both sides accept exactly the same text.
public struct AddressPort: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// `IPv4:port` or `[IPv6]:port` (brackets required: without them the port cannot be told from the last
    /// group), the port decimal 1-65535 without sign or leading zero; nil otherwise.
    public init?(_ text: String) {
        let hostText: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return nil
            }
            hostText = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.firstIndex(of: ":"), text.lastIndex(of: ":") == colon else { return nil }
            hostText = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        let digits = Array(portText.utf8)[...]
        guard let port = IPAddress.decimal(digits, maxDigits: 5), (1...65535).contains(port),
            digits.count == 1 || digits.first != UInt8(ascii: "0"), let address = IPAddress(String(hostText)),
            text.hasPrefix("[") == (address.family == .ipv6)
        else { return nil }
        self.init(address: address, port: UInt16(port))
    }

    public var description: String { address.family == .ipv4 ? "\(address):\(port)" : "[\(address)]:\(port)" }
}
