import DatapathCore

/// An Ethernet + IPv4 frame with TCP, UDP or ICMP echo, built with correct checksums, and read back from bytes
/// with its checksums verified, so a test can tell a rewrite that fixed them from one that did not.
struct IPv4Packet: Equatable {
    enum Transport: Equatable {
        case tcp(sport: UInt16, dport: UInt16, flags: UInt8)
        /// `checksum: false` sends the UDP "no checksum" value 0.
        case udp(sport: UInt16, dport: UInt16, checksum: Bool)
        case icmpEcho(id: UInt16, reply: Bool)
    }

    static let syn: UInt8 = 0x02
    static let ack: UInt8 = 0x10
    static let fin: UInt8 = 0x01

    var source: String
    var destination: String
    var transport: Transport
    var payload: [UInt8] = [0x6e, 0x61, 0x74, 0x21, 0x0a]
    var ipID: UInt16 = 0x1234
    /// More-fragments flag and offset (8-byte units); a later fragment carries `payload` only, no L4 header.
    var moreFragments = false
    var fragmentOffset: UInt16 = 0

    var proto: UInt8 {
        switch transport {
        case .tcp: 6
        case .udp: 17
        case .icmpEcho: 1
        }
    }

    static func tcp(_ source: String, _ destination: String, sport: UInt16, dport: UInt16, flags: UInt8 = syn)
        -> IPv4Packet
    {
        IPv4Packet(source: source, destination: destination, transport: .tcp(sport: sport, dport: dport, flags: flags))
    }

    static func udp(_ source: String, _ destination: String, sport: UInt16, dport: UInt16, checksum: Bool = true)
        -> IPv4Packet
    {
        IPv4Packet(
            source: source, destination: destination, transport: .udp(sport: sport, dport: dport, checksum: checksum))
    }

    var bytes: [UInt8] {
        let src = IPAddress(source)!.bytes
        let dst = IPAddress(destination)!.bytes
        let l4 = fragmentOffset > 0 ? payload : transportBytes(src: src, dst: dst)
        var ip: [UInt8] = [0x45, 0] + be16(UInt16(20 + l4.count)) + be16(ipID)
        ip += be16((moreFragments ? 0x2000 : 0) | fragmentOffset) + [64, proto, 0, 0] + src + dst
        let sum = checksum(ip)
        ip[10] = UInt8(sum >> 8)
        ip[11] = UInt8(sum & 0xff)
        return [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00] + ip + l4
    }

    private func transportBytes(src: [UInt8], dst: [UInt8]) -> [UInt8] {
        switch transport {
        case .tcp(let sport, let dport, let flags):
            var h = be16(sport) + be16(dport) + [0, 0, 0, 1, 0, 0, 0, 0] + [0x50, flags] + be16(64240) + [0, 0, 0, 0]
            h += payload
            let sum = checksum(pseudoHeader(src, dst, length: h.count) + h)
            h[16] = UInt8(sum >> 8)
            h[17] = UInt8(sum & 0xff)
            return h
        case .udp(let sport, let dport, let withChecksum):
            var h = be16(sport) + be16(dport) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
            if withChecksum {
                var sum = checksum(pseudoHeader(src, dst, length: h.count) + h)
                if sum == 0 { sum = 0xffff }
                h[6] = UInt8(sum >> 8)
                h[7] = UInt8(sum & 0xff)
            }
            return h
        case .icmpEcho(let id, let reply):
            var h: [UInt8] = [reply ? 0 : 8, 0, 0, 0] + be16(id) + be16(1) + payload
            let sum = checksum(h)
            h[2] = UInt8(sum >> 8)
            h[3] = UInt8(sum & 0xff)
            return h
        }
    }

    private func pseudoHeader(_ src: [UInt8], _ dst: [UInt8], length: Int) -> [UInt8] {
        src + dst + [0, proto] + be16(UInt16(length))
    }
}

/// A frame read back: addresses, ports (the ICMP id as the port of its direction) and checksum verdicts.
struct ParsedIPv4 {
    var source: String
    var destination: String
    var proto: UInt8
    var sport: UInt16
    var dport: UInt16
    var ipChecksumValid: Bool
    /// Whether the L4 checksum verifies over the pseudo header and segment (nil for later fragments).
    var l4ChecksumValid: Bool?
    /// The UDP checksum field as carried.
    var udpChecksum: UInt16?

    init?(_ frame: [UInt8]) {
        guard frame.count >= 34, frame[12] == 0x08, frame[13] == 0x00 else { return nil }
        let ip = Array(frame[14..<34])
        let l4 = Array(frame[34...])
        source = IPAddress(family: .ipv4, bytes: Array(ip[12..<16])).description
        destination = IPAddress(family: .ipv4, bytes: Array(ip[16..<20])).description
        proto = ip[9]
        ipChecksumValid = checksum(ip) == 0
        let laterFragment = (UInt16(ip[6]) << 8 | UInt16(ip[7])) & 0x1fff != 0
        sport = 0
        dport = 0
        guard !laterFragment else { return }
        let pseudo = Array(ip[12..<20]) + [0, proto] + be16(UInt16(l4.count))
        switch proto {
        case 6:
            sport = read16(l4, 0)
            dport = read16(l4, 2)
            l4ChecksumValid = checksum(pseudo + l4) == 0
        case 17:
            sport = read16(l4, 0)
            dport = read16(l4, 2)
            udpChecksum = read16(l4, 6)
            l4ChecksumValid = udpChecksum == 0 || checksum(pseudo + l4) == 0
        case 1:
            if l4[0] == 8 { sport = read16(l4, 4) } else { dport = read16(l4, 4) }
            l4ChecksumValid = checksum(l4) == 0
        default:
            break
        }
    }
}

/// The Internet checksum (RFC 1071) of `bytes`: 0 when a packet's own checksum field is included and correct.
func checksum(_ bytes: [UInt8]) -> UInt16 {
    var sum: UInt32 = 0
    var index = 0
    while index + 1 < bytes.count {
        sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
        index += 2
    }
    if index < bytes.count { sum += UInt32(bytes[index]) << 8 }
    while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
    return ~UInt16(sum)
}

func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xff)] }

func read16(_ bytes: [UInt8], _ offset: Int) -> UInt16 { UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]) }
