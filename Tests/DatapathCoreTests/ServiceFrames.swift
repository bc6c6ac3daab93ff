/// TCP and UDP frames of `Packet` (Ethernet, IPv4 or IPv6 without extension headers) with their L4 checksums
/// filled in, and read back with every checksum verified from scratch, so a test can tell a translation that
/// kept them valid from one that did not.
struct ServiceFrame {
    var source: [UInt8]
    var destination: [UInt8]
    var sport: UInt16
    var dport: UInt16
    var ipChecksumValid: Bool
    var l4ChecksumValid: Bool

    /// `packet`'s bytes with the TCP or UDP checksum computed over the pseudo header.
    static func checksummed(_ packet: Packet) -> [UInt8] {
        var frame = packet.bytes
        guard let layout = Layout(frame) else { return frame }
        frame[layout.checksumOffset] = 0
        frame[layout.checksumOffset + 1] = 0
        var sum = checksum(layout.pseudoHeader(frame) + Array(frame[layout.l4...]))
        if sum == 0 && layout.proto == 17 { sum = 0xffff }
        frame[layout.checksumOffset] = UInt8(sum >> 8)
        frame[layout.checksumOffset + 1] = UInt8(sum & 0xff)
        return frame
    }

    /// The frame's addresses, ports and whether its checksums verify; nil when it is not TCP or UDP over IP.
    init?(_ frame: [UInt8]) {
        guard let layout = Layout(frame) else { return nil }
        source = Array(frame[layout.addresses.source])
        destination = Array(frame[layout.addresses.destination])
        sport = UInt16(frame[layout.l4]) << 8 | UInt16(frame[layout.l4 + 1])
        dport = UInt16(frame[layout.l4 + 2]) << 8 | UInt16(frame[layout.l4 + 3])
        ipChecksumValid = layout.v4 ? checksum(Array(frame[14..<layout.l4])) == 0 : true
        l4ChecksumValid = checksum(layout.pseudoHeader(frame) + Array(frame[layout.l4...])) == 0
    }

    /// Where the headers sit in a frame.
    private struct Layout {
        var v4: Bool
        var l4: Int
        var proto: UInt8
        var addresses: (source: Range<Int>, destination: Range<Int>)

        var checksumOffset: Int { l4 + (proto == 6 ? 16 : 6) }

        init?(_ frame: [UInt8]) {
            guard frame.count > 34 else { return nil }
            let etherType = UInt16(frame[12]) << 8 | UInt16(frame[13])
            if etherType == 0x0800 {
                v4 = true
                l4 = 14 + Int(frame[14] & 0x0f) * 4
                proto = frame[23]
                addresses = (26..<30, 30..<34)
            } else if etherType == 0x86DD {
                v4 = false
                l4 = 54
                proto = frame[20]
                addresses = (22..<38, 38..<54)
            } else {
                return nil
            }
            guard proto == 6 || proto == 17, frame.count >= l4 + (proto == 6 ? 20 : 8) else { return nil }
        }

        func pseudoHeader(_ frame: [UInt8]) -> [UInt8] {
            let length = frame.count - l4
            return Array(frame[addresses.source]) + Array(frame[addresses.destination])
                + (v4 ? [0, proto] + be16(UInt16(length)) : be32(UInt32(length)) + [0, 0, 0, proto])
        }
    }
}
