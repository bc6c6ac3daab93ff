import DatapathCore

/// JSON views of the core maps' entries, for `GET /v1/map/{name}`.
enum CoreMapDecoders {
    /// A `BitWords` map's decoder: each word with a bit set (the others are left out) as its bits, each through
    /// `item`, under `name`; the complete word that follows `complete` bit words, when there is one, as such.
    private static func bitWords(complete: UInt32?, _ name: String, _ item: @escaping @Sendable (UInt32) -> JSON)
        -> MapDecoder
    {
        MapDecoder(omitting: { valueFrom($0, at: 0) as UInt64 == 0 }) { key, value, _ in
            let word: UInt32 = valueFrom(key, at: 0)
            if let complete, word >= complete { return (["word": .int(Int64(word))], ["complete": true]) }
            let items = BitWords.bits([(word, valueFrom(value, at: 0))]).map(item)
            return (["word": .int(Int64(word))], .object([name: .array(items)]))
        }
    }

    static func register(on datapath: Datapath, ruleName: @escaping @Sendable (UInt32) -> String?) {
        datapath.registerDecoder(prefix: "na_endpoints", MapDecoder { key, value, _ in endpointRow(key, value) })
        // Slots count only while valid: the others are left out of a dump.
        datapath.registerDecoder(
            prefix: "na_ep_slots",
            MapDecoder(omitting: { value in
                let info: na_endpoint_info = valueFrom(value, at: 0)
                return info.flags & UInt32(NA_EP_SLOT_VALID) == 0
            }) { key, value, _ in endpointRow(key, value) })
        datapath.registerDecoder(
            prefix: "na_ipcache",
            MapDecoder { key, value, _ in
                let k: na_ipcache_key = valueFrom(key, at: 0)
                let v: na_ipcache_value = valueFrom(value, at: 0)
                return (
                    ["prefix": .string(k.prefix?.description ?? "?")],
                    ["identity": .int(Int64(v.identity)), "flags": .int(Int64(v.flags))]
                )
            })
        // Buckets without a valid entry are left out; the others list their valid entries.
        for (name, family) in [(IPCache.v4Name, IPAddress.Family.ipv4), (IPCache.v6Name, .ipv6)] {
            datapath.registerDecoder(
                prefix: name,
                MapDecoder(omitting: { value in IPCache.tableEntries(ofBucket: value, family: family).isEmpty }) {
                    key, value, _ in
                    let entries = IPCache.tableEntries(ofBucket: value, family: family)
                    return (
                        ["bucket": .int(Int64(valueFrom(key, at: 0) as UInt32))],
                        [
                            "entries": .array(
                                entries.map {
                                    [
                                        "address": .string($0.address.description),
                                        "identity": .int(Int64($0.identity)),
                                    ]
                                })
                        ]
                    )
                })
        }
        // Buckets without a valid entry are left out; the others list their entries as policy keys and values.
        datapath.registerDecoder(
            prefix: PolicyTable.name,
            MapDecoder(omitting: { PolicyTable.validEntries(ofBucket: $0).isEmpty }) { key, value, _ in
                let entries = PolicyTable.validEntries(ofBucket: value).map { entry -> JSON in
                    let (policyKey, policyValue) = PolicyTable.policy(of: entry)
                    var object = PolicyMapLayout.json(of: policyKey).objectValue ?? [:]
                    object["endpoint-id"] = .int(Int64(entry.ep_id))
                    for (name, item) in PolicyMapLayout.json(of: policyValue, ruleName: ruleName).objectValue ?? [:] {
                        object[name] = item
                    }
                    return .object(object)
                }
                return (["bucket": .int(Int64(valueFrom(key, at: 0) as UInt32))], ["entries": .array(entries)])
            })
        // Valid blocks only: each an endpoint's key (its identity left out) and verdict, and the identities of its
        // group whose bits are set.
        datapath.registerDecoder(
            prefix: PolicyBlocks.name,
            MapDecoder(omitting: { (valueFrom($0, at: 0) as UInt32) & UInt32(NA_POLICY_TABLE_VALID) == 0 }) {
                key, value, _ in
                let block: na_policy_block = valueFrom(value, at: 0)
                let (policyKey, policyValue) = PolicyTable.policy(
                    of: na_policy_table_entry(meta: block.meta, identity: 0, ep_id: block.ep_id, rule_id: block.rule_id)
                )
                var object = PolicyMapLayout.json(of: policyKey).objectValue ?? [:]
                object["identity"] = nil
                object["endpoint-id"] = .int(Int64(block.ep_id))
                for (name, item) in PolicyMapLayout.json(of: policyValue, ruleName: ruleName).objectValue ?? [:] {
                    object[name] = item
                }
                object["identities"] = .array(PolicyBlocks.identities(of: block).map { .int(Int64($0)) })
                return (["slot": .int(Int64(valueFrom(key, at: 0) as UInt32))], .object(object))
            })
        // Endpoint ids whose misses go on to their hash while the agent restores (complete ones, the rule, are left
        // out).
        datapath.registerDecoder(
            prefix: PolicyTable.stateName,
            MapDecoder(omitting: { valueFrom($0, at: 0) as UInt32 == UInt32(NA_POLICY_TABLE_COMPLETE) }) {
                key, _, _ in (["endpoint-id": .int(Int64(valueFrom(key, at: 0) as UInt32))], ["state": "unknown"])
            })
        // The buckets a key found full, by their word of 64.
        datapath.registerDecoder(
            prefix: PolicyTable.overflowName, bitWords(complete: nil, "buckets") { .int(Int64($0)) })
        // The ports some full-length key names, by their word of 64; the fourth protocol class holds every protocol
        // but TCP, UDP and SCTP.
        let classes = [IPProtocol.tcp, IPProtocol.udp, IPProtocol.sctp].map(IPProtocol.name) + ["other"]
        datapath.registerDecoder(
            prefix: PolicyTable.portsName,
            bitWords(complete: UInt32(NA_POLICY_PORTS_WORDS), "ports") { bit in
                .object([
                    "direction": .string(bit >> 18 == 0 ? "ingress" : "egress"),
                    "protocol": .string(classes[Int((bit >> 16) & 3)]), "port": .int(Int64(bit & 0xffff)),
                ])
            })
        // The Bloom filter of (port, peer) pairs: its set bits.
        datapath.registerDecoder(
            prefix: PolicyTable.peersName,
            bitWords(complete: UInt32(NA_POLICY_PEERS_WORDS), "bits") { .int(Int64($0)) })
        datapath.registerDecoder(
            prefix: "na_policy",
            MapDecoder { key, value, _ in
                let endpoint: UInt32 = valueFrom(key, at: 0)
                let innerID: UInt32 = valueFrom(value, at: 0)
                return (["endpoint-id": .int(Int64(endpoint))], ["inner-map-id": .int(Int64(innerID))])
            })
        for prefix in [PolicyMapLayout.namePrefix, PolicyMapLayout.exactNamePrefix] {
            datapath.registerDecoder(
                prefix: prefix,
                MapDecoder { key, value, _ in
                    let k: na_policy_key = valueFrom(key, at: 0)
                    let v: na_policy_value = valueFrom(value, at: 0)
                    return (PolicyMapLayout.json(of: k), PolicyMapLayout.json(of: v, ruleName: ruleName))
                })
        }
        datapath.registerDecoder(
            prefix: "na_metrics",
            MapDecoder(omitting: MetricsSlot.unused) { key, value, map in
                let slot = MetricsSlot(key: key, value: value, cpus: map.valueCount)
                return (
                    [
                        "reason": .string(DropReason.name(of: slot.reason)), "reason-code": .int(Int64(slot.reason)),
                        "direction": .string(slot.direction),
                    ],
                    ["packets": .int(Int64(bitPattern: slot.packets)), "bytes": .int(Int64(bitPattern: slot.bytes))]
                )
            })
        datapath.registerDecoder(
            prefix: "na_config",
            MapDecoder { key, value, _ in
                let c: na_config = valueFrom(value, at: 0)
                return (
                    ["index": .int(Int64(valueFrom(key, at: 0) as UInt32))],
                    [
                        "ct-lifetime-tcp": .int(Int64(c.ct_lifetime_tcp)),
                        "ct-lifetime-syn": .int(Int64(c.ct_lifetime_syn)),
                        "ct-lifetime-closing": .int(Int64(c.ct_lifetime_closing)),
                        "ct-lifetime-nontcp": .int(Int64(c.ct_lifetime_nontcp)), "flags": .int(Int64(c.flags)),
                        "allowed-sample-rate": .int(Int64(c.allowed_sample_rate)),
                        "drop-event-interval-ms": .int(Int64(c.drop_event_interval_ms)),
                        "localhost-policy": .bool(c.flags & UInt32(NA_CFG_LOCALHOST_POLICY) != 0),
                    ]
                )
            })
    }

    /// A row of `na_endpoints`, or a valid slot of `na_ep_slots` (the same row), by the host-side ifindex.
    static func endpointRow(_ key: [UInt8], _ value: [UInt8]) -> (key: JSON, value: JSON) {
        let ifindex: UInt32 = valueFrom(key, at: 0)
        let info: na_endpoint_info = valueFrom(value, at: 0)
        var object: [String: JSON] = [
            "endpoint-id": .int(Int64(info.ep_id)), "identity": .int(Int64(info.identity)),
            "policy-revision": .int(Int64(info.policy_revision)),
            "enforce-ingress": .bool(info.flags & UInt32(NA_EP_ENFORCE_INGRESS) != 0),
            "enforce-egress": .bool(info.flags & UInt32(NA_EP_ENFORCE_EGRESS) != 0),
        ]
        if info.flags & UInt32(NA_EP_HAS_IPV4) != 0 {
            object["ipv4"] = .string(IPAddress(family: .ipv4, bytes: tupleBytes(info.ipv4)).description)
        }
        if info.flags & UInt32(NA_EP_HAS_IPV6) != 0 {
            object["ipv6"] = .string(IPAddress(family: .ipv6, bytes: tupleBytes(info.ipv6)).description)
        }
        return (["ifindex": .int(Int64(ifindex))], .object(object))
    }
}
