import DatapathCore

/// One na_ct entry read back from the kernel, and its JSON form for `/v1/ct` and `/v1/map/na_ct`.
public struct ConntrackEntry: Sendable {
    public var key: na_ct_key
    public var value: na_ct_value

    public init(key: na_ct_key, value: na_ct_value) {
        self.key = key
        self.value = value
    }

    /// From raw map bytes; nil when the sizes are not na_ct's.
    public init?(keyBytes: [UInt8], valueBytes: [UInt8]) {
        guard keyBytes.count == MemoryLayout<na_ct_key>.size, valueBytes.count >= MemoryLayout<na_ct_value>.size
        else { return nil }
        self.init(key: valueFrom(keyBytes, at: 0), value: valueFrom(valueBytes, at: 0))
    }

    public var source: IPAddress? { IPAddress(familyByte: key.family, key: tupleBytes(key.saddr)) }
    public var destination: IPAddress? { IPAddress(familyByte: key.family, key: tupleBytes(key.daddr)) }
    /// Ports in host order (for ICMP echo: the echo id, on the side the datapath put it).
    public var sourcePort: UInt16 { UInt16(bigEndian: key.sport) }
    public var destinationPort: UInt16 { UInt16(bigEndian: key.dport) }

    /// The tuple: source, destination, ports, protocol, direction.
    public var keyJSON: [String: JSON] {
        [
            "source": .string(Self.text(source, raw: key.saddr)),
            "source-port": .int(Int64(sourcePort)),
            "destination": .string(Self.text(destination, raw: key.daddr)),
            "destination-port": .int(Int64(destinationPort)),
            "protocol": .string(IPProtocol.name(of: key.proto)),
            "direction": .string(key.direction == UInt8(NA_DIR_EGRESS.rawValue) ? "egress" : "ingress"),
        ]
    }

    /// The state; `expires-in` is seconds from `now` (negative: expired, waiting for the GC).
    public func valueJSON(now: UInt32) -> [String: JSON] {
        [
            "endpoint": .int(Int64(value.ep_id)),
            "identity": .int(Int64(value.src_identity)),
            "rule-id": .int(Int64(value.rule_id)),
            "policy-generation": .int(Int64(value.policy_revision)),
            "flags": .array(ConntrackFlags.names(of: value.flags).map { .string($0) }),
            "expires-in": .int(Int64(value.lifetime) - Int64(now)),
            "packets": .int(Int64(bitPattern: value.packets)),
            "bytes": .int(Int64(bitPattern: value.bytes)),
        ]
    }

    /// Tuple and state in one object, as `/v1/ct` lists entries.
    public func json(now: UInt32) -> JSON {
        .object(keyJSON.merging(valueJSON(now: now)) { first, _ in first })
    }

    private static func text<T>(_ address: IPAddress?, raw: T) -> String {
        address?.description ?? tupleBytes(raw).map { String($0, radix: 16) }.joined(separator: ":")
    }
}

/// Names of na_ct_value.flags bits.
public enum ConntrackFlags {
    static let named: [(UInt32, String)] = [
        (UInt32(NA_CT_SEEN_NON_SYN), "seen-non-syn"), (UInt32(NA_CT_CLOSING), "closing"),
        (UInt32(NA_CT_SEEN_REPLY), "seen-reply"), (UInt32(NA_CT_NAT), "nat"), (UInt32(NA_CT_SERVICE), "service"),
        (UInt32(NA_CT_DIRECT), "direct"),
    ]

    /// Names of the bits set, in bit order; unknown bits as "0x…".
    public static func names(of flags: UInt32) -> [String] {
        var rest = flags
        var result: [String] = []
        for (bit, name) in named where flags & bit != 0 {
            result.append(name)
            rest &= ~bit
        }
        if rest != 0 { result.append("0x" + String(rest, radix: 16)) }
        return result
    }
}
