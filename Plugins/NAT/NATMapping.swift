import DatapathCore

/// One masqueraded flow: the pod's original tuple, the address and port it leaves with, and its state.
struct NATMapping: Sendable {
    /// The forward half's key: the pod's tuple.
    var key: na_ct_key
    var forward: na_nat_entry
    /// The reverse half, nil when it is missing or belongs to another flow (the datapath repairs or replaces it).
    var reverse: na_nat_entry?

    var keyBytes: [UInt8] { bytesOf(key) }

    var family: IPAddress.Family { key.family == UInt8(NA_FAMILY_IPV6) ? .ipv6 : .ipv4 }
    var original: IPAddress { IPAddress(family: family, bytes: tupleBytes(key.saddr)) }
    var originalPort: UInt16 { UInt16(bigEndian: key.sport) }
    var translated: IPAddress { IPAddress(family: family, bytes: tupleBytes(forward.addr)) }
    var translatedPort: UInt16 { UInt16(bigEndian: forward.port) }
    var destination: IPAddress { IPAddress(family: family, bytes: tupleBytes(key.daddr)) }
    var destinationPort: UInt16 { UInt16(bigEndian: key.dport) }
    /// The pair's lifetime: both halves carry it; the later one counts if they differ.
    var lifetime: UInt32 { max(forward.lifetime, reverse?.lifetime ?? 0) }

    func json(now: UInt32) -> JSON {
        [
            "protocol": .string(IPProtocol.name(of: key.proto)),
            "original": ["address": .string(original.description), "port": .int(Int64(originalPort))],
            "translated": ["address": .string(translated.description), "port": .int(Int64(translatedPort))],
            "destination": ["address": .string(destination.description), "port": .int(Int64(destinationPort))],
            "age-seconds": .int(Int64(now) - Int64(forward.created)),
            "expires-in-seconds": .int(max(Int64(lifetime) - Int64(now), 0)),
            "state": .string(NATMapping.stateName(proto: key.proto, flags: forward.flags)),
            "tracked": .bool(forward.flags & UInt32(NA_NAT_TRACKED) != 0),
            "complete": .bool(reverse != nil),
        ]
    }

    /// TCP state as the flags say (the lifetime class the datapath applies); "active" for other protocols.
    static func stateName(proto: UInt8, flags: UInt32) -> String {
        guard proto == IPProtocol.tcp else { return "active" }
        if flags & UInt32(NA_CT_CLOSING) != 0 { return "closing" }
        let established = UInt32(NA_CT_SEEN_NON_SYN) | UInt32(NA_CT_SEEN_REPLY)
        return flags & established == established ? "established" : "opening"
    }
}
