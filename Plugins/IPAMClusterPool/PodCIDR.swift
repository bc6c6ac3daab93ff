import DatapathCore

/// A node's pod CIDR as the allocator sees it: addresses numbered by their offset from the network address,
/// and which of them are never handed out.
///
/// Reserved: offset 0 (the IPv4 network address; for IPv6 the subnet-router anycast address, RFC 4291 §2.6.1),
/// offset 1 (the gateway, the node's side of every pod's default route) and, for IPv4, the broadcast address.
/// The host part is at most 63 bits, so offsets and counts fit in 64 bits.
struct PodCIDR: Sendable, Equatable, CustomStringConvertible {
    let prefix: IPPrefix
    let hostBits: Int

    static let maximumHostBits = 63
    static let gatewayOffset: UInt64 = 1

    /// nil when the prefix leaves no address to hand out or has more host bits than `maximumHostBits`.
    init?(_ prefix: IPPrefix) {
        let hostBits = prefix.address.bitLength - prefix.length
        guard hostBits >= 2, hostBits <= Self.maximumHostBits else { return nil }
        self.prefix = prefix
        self.hostBits = hostBits
    }

    var family: IPAddress.Family { prefix.address.family }
    var description: String { prefix.description }

    /// Addresses in the CIDR, reserved ones included.
    var size: UInt64 { 1 << UInt64(hostBits) }
    var firstUsable: UInt64 { 2 }
    var lastUsable: UInt64 { family == .ipv4 ? size - 2 : size - 1 }
    /// How many addresses can be handed out.
    var capacity: UInt64 { lastUsable - firstUsable + 1 }

    var gateway: IPAddress { address(at: Self.gatewayOffset) }

    /// The address `offset` after the network address (offset < size).
    func address(at offset: UInt64) -> IPAddress {
        var bytes = prefix.address.bytes
        let width = min(8, bytes.count)
        let low = Self.lowBits(bytes, width: width) | offset
        for index in 0..<width {
            bytes[bytes.count - 1 - index] = UInt8(truncatingIfNeeded: low >> (8 * UInt64(index)))
        }
        return IPAddress(family: family, bytes: bytes)
    }

    /// The offset of `address`, or nil when it lies outside the CIDR.
    func offset(of address: IPAddress) -> UInt64? {
        guard prefix.contains(address) else { return nil }
        return Self.lowBits(address.bytes, width: min(8, address.bytes.count)) & (size - 1)
    }

    /// Why the address at `offset` is never handed out, or nil when it can be.
    func reservation(at offset: UInt64) -> String? {
        switch offset {
        case 0: return family == .ipv4 ? "the network address" : "the subnet-router anycast address"
        case Self.gatewayOffset: return "the gateway"
        case size - 1 where family == .ipv4: return "the broadcast address"
        default: return nil
        }
    }

    private static func lowBits(_ bytes: [UInt8], width: Int) -> UInt64 {
        bytes.suffix(width).reduce(0) { $0 << 8 | UInt64($1) }
    }
}
