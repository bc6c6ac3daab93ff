import AgentAPI
import DatapathCore
import FoundationEssentials
import Glibc

/// The JSON the IPAM routes answer with. Allocation answers follow Cilium's IPAMResponse (`address`,
/// `host-addressing`, and per family `ip`, `gateway`, `cidrs`, `expiration-uuid`); ENI-only fields such as
/// `master-mac` are left out.
enum IPAMResponses {
    /// `POST /v1/ipam` and `POST /v1/ipam/{ip}`.
    static func allocated(_ allocations: [Allocation], config: IPAMConfig) -> JSON {
        var address: [String: JSON] = [:]
        var object: [String: JSON] = ["host-addressing": hostAddressing(config)]
        for allocation in allocations {
            let name = allocation.family.name
            guard let family = config.family(allocation.family) else { continue }
            address[name] = .string(allocation.address.description)
            var detail: [String: JSON] = [
                "ip": .string(allocation.address.description),
                "gateway": .string(family.podCIDR.gateway.description),
                "cidrs": .array(family.cidrs.map { .string($0.description) }),
            ]
            if let uuid = allocation.expirationUUID {
                address["\(name)-expiration-uuid"] = .string(uuid)
                detail["expiration-uuid"] = .string(uuid)
            }
            if let owner = allocation.owner { detail["owner"] = .string(owner) }
            if let pod = allocation.pod { detail["pod"] = .string(pod) }
            object[name] = .object(detail)
        }
        object["address"] = .object(address)
        return .object(object)
    }

    /// The node's side of the pod CIDRs: `{"ipv4": {"enabled", "ip", "alloc-range"}, "ipv6": {...}}`.
    static func hostAddressing(_ config: IPAMConfig) -> JSON {
        var object: [String: JSON] = [:]
        for family in [IPAddress.Family.ipv4, .ipv6] {
            guard let configured = config.family(family) else {
                object[family.name] = ["enabled": false]
                continue
            }
            object[family.name] = [
                "enabled": true, "ip": .string(configured.podCIDR.gateway.description),
                "alloc-range": .string(configured.podCIDR.description),
            ]
        }
        return .object(object)
    }

    /// One allocation as listings show it.
    static func allocation(_ allocation: Allocation, now: Int64) -> JSON {
        var object: [String: JSON] = [
            "ip": .string(allocation.address.description), "family": .string(allocation.family.name),
            "allocated-at": .string(timestamp(allocation.allocatedAtMs)),
        ]
        if let owner = allocation.owner { object["owner"] = .string(owner) }
        if let pod = allocation.pod { object["pod"] = .string(pod) }
        if let endpoint = allocation.endpoint { object["endpoint"] = .int(Int64(endpoint)) }
        if let expiresAt = allocation.expiresAtMs {
            object["expires"] = .string(timestamp(expiresAt))
            object["expires-in-seconds"] = .int(max(0, (expiresAt - now + 999) / 1000))
        }
        if let uuid = allocation.expirationUUID { object["expiration-uuid"] = .string(uuid) }
        return .object(object)
    }

    /// `GET /v1/ipam`.
    static func listing(_ listing: IPAM.Listing, config: IPAMConfig) -> JSON {
        var object: [String: JSON] = [
            "allocations": .array(listing.allocations.map { allocation($0, now: listing.now) }),
            "expiration-timeout-seconds": .int(config.expirationTimeout),
        ]
        for usage in listing.families {
            let family = config.family(usage.family)!
            object[usage.family.name] = [
                "pod-cidr": .string(usage.podCIDR.description), "gateway": .string(usage.podCIDR.gateway.description),
                "cidrs": .array(family.cidrs.map { .string($0.description) }),
                "capacity": .int(Int64(usage.podCIDR.capacity)), "allocated": .int(Int64(usage.allocated)),
                "free": .int(Int64(usage.free)),
            ]
        }
        return .object(object)
    }

    /// `DELETE /v1/ipam/{ip}`.
    static func released(_ address: IPAddress, _ allocation: Allocation?) -> JSON {
        var object: [String: JSON] = ["ip": .string(address.description), "released": .bool(allocation != nil)]
        if let owner = allocation?.owner { object["owner"] = .string(owner) }
        if let pod = allocation?.pod { object["pod"] = .string(pod) }
        if let endpoint = allocation?.endpoint { object["endpoint"] = .int(Int64(endpoint)) }
        return .object(object)
    }

    /// `POST /v1/ipam/gc`.
    static func garbage(_ orphans: [Allocation], dryRun: Bool, now: Int64) -> JSON {
        [
            "dry-run": .bool(dryRun), "orphans": .array(orphans.map { allocation($0, now: now) }),
            "released": .int(dryRun ? 0 : Int64(orphans.count)),
        ]
    }

    /// RFC 3339 in UTC with milliseconds.
    static func timestamp(_ ms: Int64) -> String {
        RFC3339.format(nanoseconds: ms * 1_000_000, fractionDigits: 3)
    }
}
