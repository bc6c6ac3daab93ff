import DatapathCore

/// JSON views of the socket load balancer's maps (`bpf/lib/lb_maps.h`), for `GET /v1/map/{name}`. The endpoint
/// object includes the same map definitions, so these maps are the datapath's by name and the `sock` object
/// reuses their pins. Addresses read as `AddressPort` text, frontends as `ServiceFrontend` ("ip:port/proto").
enum LBMapDecoders {
    static func register(on datapath: Datapath) {
        // A backend slot names an id: its address is in na_lb_backends, read when the slot is decoded.
        let backends = try? datapath.typedMap("na_lb_backends", UInt32.self, na_lb_backend.self)
        datapath.registerDecoder(
            prefix: "na_lb_services",
            MapDecoder { key, value, _ in
                let k: na_lb_service_key = valueFrom(key, at: 0)
                let v: na_lb_service_value = valueFrom(value, at: 0)
                return (serviceKey(k), serviceValue(k, v, backend: { id in (try? backends?.lookup(id)) ?? nil }))
            })
        datapath.registerDecoder(
            prefix: "na_lb_backends",
            MapDecoder { key, value, _ in
                let id: UInt32 = valueFrom(key, at: 0)
                let b: na_lb_backend = valueFrom(value, at: 0)
                return (["backend-id": .int(Int64(id))], backend(b))
            })
        datapath.registerDecoder(
            prefix: "na_lb_revnat",
            MapDecoder { key, value, _ in
                let k: na_lb_revnat_key = valueFrom(key, at: 0)
                let v: na_lb_revnat_value = valueFrom(value, at: 0)
                return (
                    [
                        "cookie": .int(Int64(bitPattern: k.cookie)),
                        "backend": .string(text(family: k.family, k.addr, port: k.port)),
                    ],
                    [
                        "frontend": .string(text(family: v.family, v.addr, port: v.port)),
                        "service-id": .int(Int64(v.service_id)),
                    ]
                )
            })
        datapath.registerDecoder(
            prefix: "na_lb_affinity",
            MapDecoder { key, value, _ in
                let k: na_lb_affinity_key = valueFrom(key, at: 0)
                let v: na_lb_affinity_value = valueFrom(value, at: 0)
                let idle = Int64(MonotonicClock.seconds()) - Int64(v.last_used)
                return (
                    ["netns-cookie": .int(Int64(bitPattern: k.netns_cookie)), "service-id": .int(Int64(k.service_id))],
                    [
                        "backend-id": .int(Int64(v.backend_id)), "last-used": .int(Int64(v.last_used)),
                        "idle-seconds": .int(max(idle, 0)),
                    ]
                )
            })
        datapath.registerDecoder(
            prefix: "na_lb_aff_ip",
            MapDecoder { key, value, _ in
                let k: na_lb_aff_ip_key = valueFrom(key, at: 0)
                let v: na_lb_affinity_value = valueFrom(value, at: 0)
                let idle = Int64(MonotonicClock.seconds()) - Int64(v.last_used)
                return (
                    ["client": .string(address(family: k.family, k.addr)), "service-id": .int(Int64(k.service_id))],
                    [
                        "backend-id": .int(Int64(v.backend_id)), "last-used": .int(Int64(v.last_used)),
                        "idle-seconds": .int(max(idle, 0)),
                    ]
                )
            })
        datapath.registerDecoder(
            prefix: "na_lb_aff_match",
            MapDecoder { key, _, _ in
                let k: na_lb_aff_match_key = valueFrom(key, at: 0)
                return (["backend-id": .int(Int64(k.backend_id)), "service-id": .int(Int64(k.service_id))], [:])
            })
        // Words with no bit set are left out; the last word says whether the agent has written every frontend's.
        datapath.registerDecoder(
            prefix: "na_lb_ports",
            MapDecoder(omitting: { $0.allSatisfy { $0 == 0 } }) { key, value, _ in
                let index: UInt32 = valueFrom(key, at: 0)
                let word: UInt64 = valueFrom(value, at: 0)
                guard index < UInt32(NA_LB_PORTS_COMPLETE) else { return (["complete": .bool(true)], [:]) }
                let first = LBFrontendPorts.Port(index: index * 64)
                let ports = BitWords.bits([(index, word)]).map { JSON.int(Int64(LBFrontendPorts.Port(index: $0).port)) }
                return (
                    ["protocol": .string(IPProtocol.name(of: first.proto)), "first-port": .int(Int64(first.port))],
                    ["ports": .array(ports)]
                )
            })
    }

    /// The frontend and the slot: 0 for the service, else the slot's place (1...) in its bank.
    static func serviceKey(_ key: na_lb_service_key) -> JSON {
        var object: [String: JSON] = ["frontend": .string(key.frontend?.description ?? "?")]
        if key.slot == 0 {
            object["slot"] = 0
        } else {
            object["slot"] = .int(Int64(key.slot & ~UInt16(NA_LB_SLOT_BANK1)))
            object["bank"] = .int(key.slot & UInt16(NA_LB_SLOT_BANK1) != 0 ? 1 : 0)
        }
        return .object(object)
    }

    /// Slot 0: the service id (also the reverse translation's), the slots taking new connections, the backends
    /// that keep only theirs, the bank in use and the affinity timeout. A backend slot: its backend.
    static func serviceValue(
        _ key: na_lb_service_key, _ value: na_lb_service_value, backend: (UInt32) -> na_lb_backend?
    ) -> JSON {
        guard key.slot != 0 else {
            return [
                "service-id": .int(Int64(value.service_id)), "count": .int(Int64(value.count)),
                "inactive": .int(Int64(value.inactive)), "bank": .int(LBSlotBank(flags: value.flags) == .one ? 1 : 0),
                "affinity-timeout": .int(Int64(value.affinity_timeout)),
            ]
        }
        var object: [String: JSON] = [
            "backend-id": .int(Int64(value.backend_id)), "position": .int(Int64(value.position)),
        ]
        if let found = backend(value.backend_id) {
            object["backend"] = .string(text(family: found.family, found.addr, port: found.port))
        }
        return .object(object)
    }

    static func backend(_ b: na_lb_backend) -> JSON {
        [
            "address": .string(text(family: b.family, b.addr, port: b.port)),
            "protocol": .string(IPProtocol.name(of: b.proto)),
            "state": .string(ServiceBackendState(abi: b.state)?.rawValue ?? "unknown(\(b.state))"),
            "weight": .int(Int64(b.weight)),
        ]
    }

    /// "10.0.0.7:8080" or "[fd00::7]:8080" from an address as the maps hold it and a port in network order.
    private static func address<Bytes>(family: UInt8, _ addr: Bytes) -> String {
        IPAddress(familyByte: family, key: tupleBytes(addr))?.description ?? "?"
    }

    private static func text<Bytes>(family: UInt8, _ addr: Bytes, port: UInt16) -> String {
        guard let address = IPAddress(familyByte: family, key: tupleBytes(addr)) else { return "?" }
        return AddressPort(address: address, port: UInt16(bigEndian: port)).description
    }
}
