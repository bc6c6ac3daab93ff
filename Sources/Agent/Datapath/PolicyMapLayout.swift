import AgentAPI
import DatapathCore
import Policy

/// Encoding of policy entries into the LPM trie's key (see nodeagent_abi.h: identity+direction 40 bits, then the
/// protocol, then 0-16 port bits).
enum PolicyMapLayout {
    static let namePrefix = "na_pol_"
    static let outerMap = "na_policy"

    static func mapName(endpoint id: UInt32) -> String { namePrefix + id.zeroPadded(to: 5) }

    /// The endpoint's hash of full-length keys beside its trie (`na_policy_exact` in bpf/lib/maps.h).
    static let exactNamePrefix = "na_polh_"
    static let exactOuterMap = "na_policy_exact"

    static func exactMapName(endpoint id: UInt32) -> String { exactNamePrefix + id.zeroPadded(to: 5) }

    /// Whether the slot lives in the endpoint's hash: a full-length key (one protocol, one port) of one peer
    /// identity, where one lookup finds it and the trie never grows with the number of peers. Always the longest
    /// prefix, so the datapath answers as from one trie holding everything. Keys for any peer (identity 0) stay in
    /// the trie: there are as many as ports, not peers, and the datapath's any-peer lookup then needs no hash.
    static func isExact(_ slot: PolicyEntry.Key) -> Bool { slot.identity != 0 && slot.proto != 0 && slot.bits == 16 }

    /// The datapath keys of the full-length slots among `slots`, computed as they are read.
    static func exactKeys<Slots: Sequence<PolicyEntry.Key>>(_ slots: Slots)
        -> LazyMapSequence<LazyFilterSequence<Slots>, na_policy_key>
    {
        slots.lazy.filter(isExact).map(key)
    }

    static func key(_ slot: PolicyEntry.Key) -> na_policy_key {
        var key = na_policy_key()
        key.identity = slot.identity.bigEndian
        key.direction = slot.direction.rawValue
        if slot.proto == 0 {
            key.prefixlen = UInt32(NA_POLICY_PREFIX_FULL)
        } else {
            key.protocol = slot.proto
            key.prefixlen = UInt32(NA_POLICY_PREFIX_PROTO) + UInt32(slot.bits)
            let mask: UInt16 = slot.bits == 0 ? 0 : UInt16.max << (16 - UInt16(slot.bits))
            key.dport = (slot.port & mask).bigEndian
        }
        return key
    }

    static func value(_ entry: PolicyEntry) -> na_policy_value {
        var value = na_policy_value()
        value.rule_id = entry.ruleID
        value.flags = entry.deny ? UInt32(NA_POLICY_DENY) : 0
        return value
    }

    static func json(of key: na_policy_key) -> JSON {
        let bits = Int(key.prefixlen) - Int(NA_POLICY_PREFIX_PROTO)
        var object: [String: JSON] = [
            "identity": .int(Int64(UInt32(bigEndian: key.identity))),
            "direction": .string(key.direction == UInt8(NA_DIR_EGRESS.rawValue) ? "egress" : "ingress"),
        ]
        if key.prefixlen <= UInt32(NA_POLICY_PREFIX_FULL) {
            object["protocol"] = "ANY"
        } else {
            object["protocol"] = .string(IPProtocol.name(of: key.protocol))
            let port = UInt16(bigEndian: key.dport)
            if bits > 0 {
                let span = bits >= 16 ? 0 : (1 << (16 - bits)) - 1
                object["port"] = .int(Int64(port))
                object["end-port"] = .int(Int64(Int(port) + span))
            }
        }
        return .object(object)
    }

    static func json(of value: na_policy_value, ruleName: (UInt32) -> String?) -> JSON {
        var object: [String: JSON] = [
            "verdict": value.flags & UInt32(NA_POLICY_DENY) != 0 ? "deny" : "allow",
            "rule-id": .int(Int64(value.rule_id)),
        ]
        if let name = ruleName(value.rule_id) { object["rule"] = .string(name) }
        return .object(object)
    }
}

extension PolicyMapLayout {
    /// Decodes a key/value read back from the map.
    static func entry(key: na_policy_key, value: na_policy_value) -> PolicyEntry {
        let proto: UInt8 = key.prefixlen <= UInt32(NA_POLICY_PREFIX_FULL) ? 0 : key.protocol
        let bits = proto == 0 ? 0 : UInt8(min(16, max(0, Int(key.prefixlen) - Int(NA_POLICY_PREFIX_PROTO))))
        return PolicyEntry(
            identity: UInt32(bigEndian: key.identity), direction: Direction(rawValue: key.direction) ?? .ingress,
            proto: proto, port: bits == 0 ? 0 : UInt16(bigEndian: key.dport), portPrefixBits: bits,
            deny: value.flags & UInt32(NA_POLICY_DENY) != 0, ruleIDs: value.rule_id == 0 ? [] : [value.rule_id])
    }
}
