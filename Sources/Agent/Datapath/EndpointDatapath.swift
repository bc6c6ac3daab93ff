import DatapathCore
import Foundation
import Policy

/// Programs one endpoint into the datapath: its policy map, its row in na_endpoints, its addresses in the ipcache,
/// and the tc programs on its host-side interface.
struct EndpointDatapath {
    let datapath: Datapath
    let policyMapEntries: Int

    static let fromEndpoint = "from_endpoint"
    static let toEndpoint = "to_endpoint"

    var template: InnerMapTemplate {
        InnerMapTemplate(
            type: .lpmTrie, keySize: MemoryLayout<na_policy_key>.size, valueSize: MemoryLayout<na_policy_value>.size,
            maxEntries: policyMapEntries, flags: InnerMapTemplate.noPrealloc)
    }

    /// The endpoint's policy map, created (and pinned) when it does not exist yet.
    func policyMap(_ id: UInt32, create: Bool = true) throws -> TypedMap<na_policy_key, na_policy_value>? {
        guard
            let map = try datapath.innerMap(
                outer: PolicyMapLayout.outerMap, key: id, name: PolicyMapLayout.mapName(endpoint: id),
                create: create ? template : nil)
        else { return nil }
        return try TypedMap(map)
    }

    /// Writes `add` (new or changed slots) before removing `remove`, so the map never passes through a state with
    /// fewer allowed or denied flows than both the old and the new policy agree on.
    func applyPolicy(_ id: UInt32, add: [PolicyEntry], remove: [PolicyEntry.Key]) throws {
        guard let map = try policyMap(id) else { return }
        for entry in add {
            try map.update(PolicyMapLayout.key(entry.key), PolicyMapLayout.value(entry))
        }
        for slot in remove {
            try map.delete(PolicyMapLayout.key(slot))
        }
    }

    /// What the endpoint's policy map holds now (after a restart, the truth to diff against).
    func realizedPolicy(_ id: UInt32) throws -> [PolicyEntry.Key: PolicyEntry] {
        guard let map = try policyMap(id, create: false) else { return [:] }
        return PolicyEntry.byKey(try map.entries().map { PolicyMapLayout.entry(key: $0.key, value: $0.value) })
    }

    func removePolicyMap(_ id: UInt32) throws {
        try datapath.removeInnerMap(
            outer: PolicyMapLayout.outerMap, key: id, name: PolicyMapLayout.mapName(endpoint: id))
    }

    func writeEndpointInfo(_ endpoint: Endpoint) throws {
        var info = na_endpoint_info()
        info.ep_id = endpoint.id
        info.identity = endpoint.identity
        info.policy_revision = endpoint.policyGeneration
        var flags: UInt32 = 0
        if endpoint.enforceIngress { flags |= UInt32(NA_EP_ENFORCE_INGRESS) }
        if endpoint.enforceEgress { flags |= UInt32(NA_EP_ENFORCE_EGRESS) }
        if let ipv4 = endpoint.ipv4 {
            flags |= UInt32(NA_EP_HAS_IPV4)
            setTupleBytes(&info.ipv4, ipv4.bytes)
        }
        if let ipv6 = endpoint.ipv6 {
            flags |= UInt32(NA_EP_HAS_IPV6)
            setTupleBytes(&info.ipv6, ipv6.bytes)
        }
        info.flags = flags
        let map: TypedMap<UInt32, na_endpoint_info> = try datapath.typedMap("na_endpoints")
        try map.update(UInt32(endpoint.ifindex), info)
    }

    func removeEndpointInfo(ifindex: Int32) throws {
        let map: TypedMap<UInt32, na_endpoint_info> = try datapath.typedMap("na_endpoints")
        try map.delete(UInt32(ifindex))
    }

    /// One endpoint row as the datapath holds it.
    struct Row {
        var ifindex: Int32
        var id: UInt32
        var policyGeneration: UInt32
        var enforceIngress: Bool
        var enforceEgress: Bool
    }

    /// Every ifindex the datapath has an endpoint row for, with what the row says of the endpoint's policy.
    func endpointRows() throws -> [Row] {
        let map: TypedMap<UInt32, na_endpoint_info> = try datapath.typedMap("na_endpoints")
        return try map.entries().map { key, info in
            Row(
                ifindex: Int32(bitPattern: key), id: info.ep_id, policyGeneration: info.policy_revision,
                enforceIngress: info.flags & UInt32(NA_EP_ENFORCE_INGRESS) != 0,
                enforceEgress: info.flags & UInt32(NA_EP_ENFORCE_EGRESS) != 0)
        }
    }

    func attachPrograms(ifindex: Int32) throws {
        try datapath.attachTC(ingress: Self.fromEndpoint, egress: Self.toEndpoint, ifindex: ifindex)
    }

    func detachPrograms(ifindex: Int32) {
        TC.detachAll(ifindex: ifindex)
    }
}
