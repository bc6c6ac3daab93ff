import AgentAPI

/// One entry of an endpoint's datapath policy map (an LPM trie keyed by identity, direction, protocol and
/// destination port).
///
/// The key's prefix length is 40 bits (identity and direction: any protocol) when `proto` is 0, otherwise
/// 48 (the protocol, any port) plus `portPrefixBits` bits of the port, so a port range is a set of such prefixes.
public struct PolicyEntry: Hashable, Sendable {
    /// The peer's identity; 0 means any peer.
    public var identity: UInt32
    public var direction: Direction
    /// IP protocol number; 0 means any protocol (then `port` and `portPrefixBits` are 0).
    public var proto: UInt8
    /// First port of the prefix.
    public var port: UInt16
    /// Leading port bits that must match: 16 for one port, 0 for every port of `proto`.
    public var portPrefixBits: UInt8
    /// True: the datapath drops matching traffic, whatever allows it.
    public var deny: Bool
    /// The rules that produced the entry. One rule, as nearly every entry has (and every entry a map holds), is
    /// kept in place: an array each would be a heap block per entry, as much again as the entry.
    private var rules: Rules

    private enum Rules: Hashable, Sendable {
        case none
        case one(UInt32)
        /// Two or more, ascending.
        case many([UInt32])

        init(_ ids: [UInt32]) {
            switch ids.count {
            case 0: self = .none
            case 1: self = .one(ids[0])
            default: self = .many(ids)
            }
        }
    }

    /// The rules that produced the entry, ascending.
    public var ruleIDs: [UInt32] {
        get {
            switch rules {
            case .none: []
            case .one(let id): [id]
            case .many(let ids): ids
            }
        }
        set { rules = Rules(newValue) }
    }

    /// The rule the map records for the entry: it has room for one, the lowest number (0: none).
    public var ruleID: UInt32 {
        switch rules {
        case .none: 0
        case .one(let id): id
        case .many(let ids): ids.min() ?? 0
        }
    }

    public init(
        identity: UInt32, direction: Direction, proto: UInt8 = 0, port: UInt16 = 0, portPrefixBits: UInt8 = 0,
        deny: Bool = false, ruleIDs: [UInt32] = []
    ) {
        precondition(portPrefixBits <= 16 && (proto != 0 || (port == 0 && portPrefixBits == 0)), "bad policy key")
        self.identity = identity
        self.direction = direction
        self.proto = proto
        self.port = port
        self.portPrefixBits = portPrefixBits
        self.deny = deny
        self.rules = Rules(ruleIDs)
    }

    /// The map key's prefix length: 40, or 48 + port bits.
    public var prefixLength: UInt32 { proto == 0 ? 40 : 48 + UInt32(portPrefixBits) }

    /// The last port the prefix covers.
    public var endPort: UInt16 {
        proto == 0 ? UInt16.max : port | UInt16(truncatingIfNeeded: (UInt32(1) << (16 - UInt32(portPrefixBits))) - 1)
    }

    /// The map key of this entry (everything but the verdict and its provenance).
    public var key: Key {
        Key(identity: identity, direction: direction, proto: proto, port: port, bits: portPrefixBits)
    }

    /// True when this entry's key prefix covers all of `other`'s for the same identity and direction.
    public func keyCovers(_ other: PolicyEntry) -> Bool {
        guard direction == other.direction else { return false }
        if proto == 0 { return true }
        guard proto == other.proto, portPrefixBits <= other.portPrefixBits else { return false }
        return PortPrefix.mask(other.port, portPrefixBits) == port
    }

    /// True when the entry matches traffic of `proto` to `port`.
    public func matches(proto: UInt8, port: UInt16) -> Bool {
        self.proto == 0 || (self.proto == proto && PortPrefix.mask(port, portPrefixBits) == self.port)
    }

    /// A policy map key.
    public struct Key: Hashable, Sendable, Comparable {
        public let identity: UInt32
        public let direction: Direction
        public let proto: UInt8
        public let port: UInt16
        public let bits: UInt8

        public static func < (a: Key, b: Key) -> Bool {
            (a.direction.rawValue, a.identity, a.proto, a.port, a.bits)
                < (b.direction.rawValue, b.identity, b.proto, b.port, b.bits)
        }
    }
}

extension PolicyEntry: CustomStringConvertible {
    /// `egress identity=300 TCP 8080 allow [3]`, ranges as `8000-8007`.
    public var description: String {
        let protoName = IPProtocol.name(of: proto)
        let ports: String
        if proto == 0 {
            ports = ""
        } else if portPrefixBits == 0 {
            ports = " any port"
        } else {
            ports = portPrefixBits == 16 ? " \(port)" : " \(port)-\(endPort)"
        }
        return "\(direction) identity=\(identity) \(protoName)\(ports) \(deny ? "deny" : "allow") \(ruleIDs)"
    }
}

/// Splitting port ranges into the aligned prefixes an LPM key can express.
public enum PortPrefix {
    /// `port` with all but its first `bits` bits cleared.
    public static func mask(_ port: UInt16, _ bits: UInt8) -> UInt16 {
        bits == 0 ? 0 : port & ~(UInt16.max >> UInt16(bits))
    }

    /// The fewest (port, prefix bits) pairs that cover exactly `range`: greedily, the largest aligned block
    /// starting at the low end each time. `0...65535` is the single prefix (0, 0).
    public static func split(_ range: ClosedRange<UInt16>) -> [(port: UInt16, bits: UInt8)] {
        var out: [(port: UInt16, bits: UInt8)] = []
        var low = UInt32(range.lowerBound)
        let high = UInt32(range.upperBound)
        while low <= high {
            // Largest block size the start is aligned to (65536 for 0), shrunk until it fits in the range.
            var size: UInt32 = low == 0 ? 1 << 16 : low & (~low &+ 1)
            while low + size - 1 > high { size >>= 1 }
            out.append((UInt16(low), UInt8(16 - size.trailingZeroBitCount)))
            low += size
        }
        return out
    }
}
