import DatapathCore

/// JSON views of the NAT maps' entries, for `GET /v1/map/{name}`.
enum NATDecoders {
    static func register(on datapath: Datapath) {
        datapath.registerDecoder(
            prefix: "na_nat",
            MapDecoder { key, value, _ in
                let k: na_ct_key = valueFrom(key, at: 0)
                let v: na_nat_entry = valueFrom(value, at: 0)
                let family: IPAddress.Family = k.family == UInt8(NA_FAMILY_IPV6) ? .ipv6 : .ipv4
                let forward = NATHalves.isForward(k)
                return (
                    [
                        "half": .string(forward ? "forward" : "reverse"),
                        "source": .string(IPAddress(family: family, bytes: tupleBytes(k.saddr)).description),
                        "destination": .string(IPAddress(family: family, bytes: tupleBytes(k.daddr)).description),
                        "source-port": .int(Int64(UInt16(bigEndian: k.sport))),
                        "destination-port": .int(Int64(UInt16(bigEndian: k.dport))),
                        "protocol": .string(IPProtocol.name(of: k.proto)),
                    ],
                    [
                        // Forward: the source it leaves with; reverse: the pod address replies go back to.
                        (forward ? "to-address" : "original-address"):
                            .string(IPAddress(family: family, bytes: tupleBytes(v.addr)).description),
                        (forward ? "to-port" : "original-port"): .int(Int64(UInt16(bigEndian: v.port))),
                        "created": .int(Int64(v.created)), "lifetime": .int(Int64(v.lifetime)),
                        "flags": .int(Int64(v.flags)),
                    ]
                )
            })
        datapath.registerDecoder(
            prefix: "na_nat_config",
            MapDecoder { key, value, _ in
                let c: na_nat_config = valueFrom(value, at: 0)
                return (
                    ["index": .int(Int64(valueFrom(key, at: 0) as UInt32))],
                    [
                        "enabled": .bool(c.flags & UInt32(NA_NAT_CFG_ENABLED) != 0),
                        "address": .string(IPAddress(family: .ipv4, bytes: tupleBytes(c.ipv4)).description),
                        "port-min": .int(Int64(c.port_min)), "port-max": .int(Int64(c.port_max)),
                        "ifindex": .int(Int64(c.ifindex)),
                    ]
                )
            })
        datapath.registerDecoder(
            prefix: "na_nat_cluster",
            MapDecoder { key, _, _ in
                let k: na_ipcache_key = valueFrom(key, at: 0)
                return (["prefix": .string(k.prefix?.description ?? "?")], [:])
            })
    }
}
