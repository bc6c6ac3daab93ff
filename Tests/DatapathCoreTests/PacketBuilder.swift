import Glibc

/// Builds test frames byte by byte: Ethernet (optionally VLAN-tagged), IPv4 or IPv6 (with options, extension
/// headers, fragments, overridable lengths), then TCP, UDP, SCTP, ICMP or ICMPv6. Fields a fixture does not
/// care about get plausible values; checksums are not computed because the datapath does not check them.
struct Packet {
    enum Network {
        case ipv4(IPv4)
        case ipv6(IPv6)
        /// Any other ethertype with an opaque payload (ARP is 0x0806).
        case other(etherType: UInt16, payload: [UInt8])
    }

    struct IPv4 {
        var source: String
        var destination: String
        /// Option bytes after the 20-byte header (padded to a multiple of 4).
        var options: [UInt8] = []
        /// Header length in 32-bit words as written; nil derives it from the options.
        var ihl: UInt8? = nil
        /// Total length as written; nil derives it from the packet.
        var totalLength: UInt16? = nil
        var id: UInt16 = 0x4242
        /// Fragment offset in 8-byte units, and the more-fragments flag.
        var fragmentOffset: UInt16 = 0
        var moreFragments = false
        /// Protocol number as written; nil derives it from the transport.
        var proto: UInt8? = nil
    }

    struct IPv6 {
        var source: String
        var destination: String
        var extensionHeaders: [ExtensionHeader] = []
        var payloadLength: UInt16? = nil
    }

    enum ExtensionHeader {
        case hopByHop, destinationOptions, routing
        case fragment(offset: UInt16, more: Bool, id: UInt32)

        var number: UInt8 {
            switch self {
            case .hopByHop: 0
            case .routing: 43
            case .fragment: 44
            case .destinationOptions: 60
            }
        }
    }

    enum Transport {
        case tcp(sport: UInt16, dport: UInt16, flags: TCPFlags)
        case udp(sport: UInt16, dport: UInt16)
        case sctp(sport: UInt16, dport: UInt16)
        case icmp(type: UInt8, code: UInt8 = 0, id: UInt16 = 0, seq: UInt16 = 1)
        case icmpv6(type: UInt8, code: UInt8 = 0, id: UInt16 = 0, seq: UInt16 = 1)
        /// Payload only (non-first fragments), carried under protocol `proto`.
        case none(proto: UInt8)

        var proto: UInt8 {
            switch self {
            case .tcp: 6
            case .udp: 17
            case .sctp: 132
            case .icmp: 1
            case .icmpv6: 58
            case .none(let proto): proto
            }
        }
    }

    struct TCPFlags: OptionSet {
        let rawValue: UInt8
        static let fin = TCPFlags(rawValue: 0x01)
        static let syn = TCPFlags(rawValue: 0x02)
        static let rst = TCPFlags(rawValue: 0x04)
        static let psh = TCPFlags(rawValue: 0x08)
        static let ack = TCPFlags(rawValue: 0x10)
    }

    var sourceMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x01]
    var destinationMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x02]
    /// VLAN ids of in-band 802.1Q tags, outermost first.
    var vlans: [UInt16] = []
    var network: Network
    var transport: Transport = .none(proto: 59)
    var payload: [UInt8] = []

    // MARK: Shorthands

    static func tcp(
        _ source: String, _ destination: String, sport: UInt16 = 40000, dport: UInt16, flags: TCPFlags = .syn
    ) -> Packet {
        Packet(network: .ip(source, destination), transport: .tcp(sport: sport, dport: dport, flags: flags))
    }

    static func udp(_ source: String, _ destination: String, sport: UInt16 = 40000, dport: UInt16) -> Packet {
        Packet(network: .ip(source, destination), transport: .udp(sport: sport, dport: dport), payload: [1, 2, 3, 4])
    }

    static func sctp(_ source: String, _ destination: String, sport: UInt16 = 40000, dport: UInt16) -> Packet {
        Packet(network: .ip(source, destination), transport: .sctp(sport: sport, dport: dport))
    }

    static func icmp(_ source: String, _ destination: String, type: UInt8, code: UInt8 = 0, id: UInt16 = 0) -> Packet {
        Packet(network: .ip(source, destination), transport: .icmp(type: type, code: code, id: id))
    }

    static func icmpv6(_ source: String, _ destination: String, type: UInt8, code: UInt8 = 0, id: UInt16 = 0)
        -> Packet
    {
        Packet(network: .ip(source, destination), transport: .icmpv6(type: type, code: code, id: id))
    }

    static let arpRequest = Packet(
        destinationMAC: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        network: .other(etherType: 0x0806, payload: [0, 1, 8, 0, 6, 4, 0, 1] + [UInt8](repeating: 0, count: 20)))

    // MARK: Serialisation

    var bytes: [UInt8] {
        var frame = destinationMAC + sourceMAC
        for vlan in vlans { frame += be16(0x8100) + be16(vlan) }
        switch network {
        case .ipv4(let ip):
            frame += be16(0x0800) + ipv4Header(ip) + l4Bytes()
        case .ipv6(let ip):
            let upper = l4Bytes()
            let ext = ipv6ExtensionHeaders(ip.extensionHeaders)
            frame += be16(0x86DD) + ipv6Header(ip, payload: UInt16(ext.count + upper.count)) + ext + upper
        case .other(let type, let payload):
            frame += be16(type) + payload
        }
        return frame
    }

    /// The frame cut to its first `count` bytes.
    func truncated(to count: Int) -> [UInt8] { Array(bytes.prefix(count)) }

    /// The frame with some bytes overwritten, for malformed headers the builder does not produce.
    func patched(_ edits: [Int: UInt8]) -> [UInt8] {
        var frame = bytes
        for (offset, byte) in edits { frame[offset] = byte }
        return frame
    }

    /// Returns a copy with the IPv4 header changed.
    func ipv4(_ change: (inout IPv4) -> Void) -> Packet {
        guard case .ipv4(var ip) = network else { preconditionFailure("not an IPv4 packet") }
        change(&ip)
        var copy = self
        copy.network = .ipv4(ip)
        return copy
    }

    /// Returns a copy with the IPv6 header changed.
    func ipv6(_ change: (inout IPv6) -> Void) -> Packet {
        guard case .ipv6(var ip) = network else { preconditionFailure("not an IPv6 packet") }
        change(&ip)
        var copy = self
        copy.network = .ipv6(ip)
        return copy
    }

    private func l4Bytes() -> [UInt8] {
        switch transport {
        case .tcp(let sport, let dport, let flags):
            // seq, ack, data offset 5 words, flags, window, checksum, urgent pointer
            return be16(sport) + be16(dport) + be32(1000) + be32(flags.contains(.ack) ? 2000 : 0)
                + [0x50, flags.rawValue] + be16(65535) + be16(0) + be16(0) + payload
        case .udp(let sport, let dport):
            return be16(sport) + be16(dport) + be16(UInt16(8 + payload.count)) + be16(0) + payload
        case .sctp(let sport, let dport):
            return be16(sport) + be16(dport) + be32(0xdead_beef) + be32(0) + payload
        case .icmp(let type, let code, let id, let seq), .icmpv6(let type, let code, let id, let seq):
            return [type, code] + be16(0) + be16(id) + be16(seq) + payload
        case .none:
            return payload
        }
    }

    private func ipv4Header(_ ip: IPv4) -> [UInt8] {
        let options = ip.options + [UInt8](repeating: 0, count: (4 - ip.options.count % 4) % 4)
        let headerLength = 20 + options.count
        let total = ip.totalLength ?? UInt16(headerLength + l4Bytes().count)
        let ihl = ip.ihl ?? UInt8(headerLength / 4)
        let frag = ip.fragmentOffset | (ip.moreFragments ? 0x2000 : 0)
        var header: [UInt8] = [0x40 | (ihl & 0x0f), 0] + be16(total) + be16(ip.id) + be16(frag)
        header += [64, ip.proto ?? transport.proto] + be16(0) + ipv4Address(ip.source) + ipv4Address(ip.destination)
        header += options
        let sum = checksum(Array(header.prefix(headerLength)))
        header[10] = UInt8(sum >> 8)
        header[11] = UInt8(sum & 0xff)
        return header
    }

    private func ipv6Header(_ ip: IPv6, payload: UInt16) -> [UInt8] {
        let next = ip.extensionHeaders.first?.number ?? transport.proto
        return [0x60, 0, 0, 0] + be16(ip.payloadLength ?? payload) + [next, 64] + ipv6Address(ip.source)
            + ipv6Address(ip.destination)
    }

    private func ipv6ExtensionHeaders(_ headers: [ExtensionHeader]) -> [UInt8] {
        var bytes: [UInt8] = []
        for (index, header) in headers.enumerated() {
            let next = index + 1 < headers.count ? headers[index + 1].number : transport.proto
            switch header {
            case .hopByHop, .destinationOptions:
                // 8 bytes: next header, length 0 (8 bytes total), PadN option of 4 bytes
                bytes += [next, 0, 1, 4, 0, 0, 0, 0]
            case .routing:
                // 24 bytes: type 0 header, segments left 0, one address
                bytes += [next, 2, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 16)
            case .fragment(let offset, let more, let id):
                bytes += [next, 0] + be16((offset << 3) | (more ? 1 : 0)) + be32(id)
            }
        }
        return bytes
    }
}

extension Packet.Network {
    /// IPv4 or IPv6 by the form of the addresses.
    static func ip(_ source: String, _ destination: String) -> Packet.Network {
        source.contains(":")
            ? .ipv6(.init(source: source, destination: destination))
            : .ipv4(.init(source: source, destination: destination))
    }
}

func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
func be32(_ v: UInt32) -> [UInt8] {
    [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
}

func ipv4Address(_ text: String) -> [UInt8] {
    var addr = in_addr()
    precondition(inet_pton(AF_INET, text, &addr) == 1, "bad IPv4 address \(text)")
    return withUnsafeBytes(of: addr) { Array($0) }
}

func ipv6Address(_ text: String) -> [UInt8] {
    var addr = in6_addr()
    precondition(inet_pton(AF_INET6, text, &addr) == 1, "bad IPv6 address \(text)")
    return withUnsafeBytes(of: addr) { Array($0) }
}

/// The Internet checksum (RFC 1071) of `bytes`.
func checksum(_ bytes: [UInt8]) -> UInt16 {
    var sum: UInt32 = 0
    var i = 0
    while i + 1 < bytes.count {
        sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
        i += 2
    }
    if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
    while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
    return ~UInt16(sum)
}
