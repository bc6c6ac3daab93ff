import DatapathCore
import FoundationEssentials
import Glibc
import Policy

/// Programs one endpoint into the datapath: its policy map, its row in na_endpoints, its addresses in the ipcache,
/// and the tc programs on its host-side interface.
struct EndpointDatapath {
    let datapath: Datapath
    let policyMapEntries: Int

    static let fromEndpoint = "from_endpoint"
    static let toEndpoint = "to_endpoint"
    static let deliverLocal = "deliver_local"
    static let localDeliveryMap = "na_local_prog"

    /// Puts deliver_local into the slot from_endpoint tail-calls (on: packets between endpoints of this node go
    /// straight into the destination pod after its ingress verdict) or empties it (off: the node's routing and
    /// to_endpoint deliver them). The slot is in a pinned map, so it holds while the agent is down.
    func setLocalDelivery(_ on: Bool) throws {
        let slots: TypedMap<UInt32, UInt32> = try datapath.typedMap(Self.localDeliveryMap)
        if on {
            try slots.update(0, UInt32(bitPattern: try datapath.program(Self.deliverLocal).fd))
        } else {
            _ = try slots.delete(0)
        }
    }

    var template: InnerMapTemplate {
        InnerMapTemplate(
            type: .lpmTrie, keySize: MemoryLayout<na_policy_key>.size, valueSize: MemoryLayout<na_policy_value>.size,
            maxEntries: policyMapEntries, flags: InnerMapTemplate.noPrealloc)
    }

    /// The hash's size for `count` entries: a power of two with room to double before it must grow again, at most
    /// the trie's size. The kernel allocates a hash's buckets for its maximum up front (a 16,384-entry hash costs
    /// 256 KiB however empty), so each endpoint's hash is sized to what it holds rather than to the trie's limit.
    static func exactCapacity(for count: Int, limit: Int) -> Int {
        var capacity = 64
        while capacity < 2 * count && capacity < limit { capacity *= 2 }
        return min(capacity, limit)
    }

    /// The hash of full-length keys for an endpoint that holds none yet.
    var exactTemplate: InnerMapTemplate {
        InnerMapTemplate(
            type: .hash, keySize: MemoryLayout<na_policy_key>.size, valueSize: MemoryLayout<na_policy_value>.size,
            maxEntries: Self.exactCapacity(for: 0, limit: policyMapEntries), flags: InnerMapTemplate.noPrealloc)
    }

    /// Empty policy maps (trie and hash) under endpoint ids no endpoint has yet, two outer-map updates for all of
    /// them: an endpoint created under one of these ids then fills maps already in place and waits for no RCU grace
    /// period. The datapath never reads them before an endpoint row names the id. Returns the ids that have both.
    func provisionPolicyMaps(_ ids: [UInt32]) throws -> Set<UInt32> {
        let tries = try datapath.insertInnerMaps(
            outer: PolicyMapLayout.outerMap, keys: ids, name: PolicyMapLayout.mapName(endpoint:), template: template)
        let hashes = try datapath.insertInnerMaps(
            outer: PolicyMapLayout.exactOuterMap, keys: tries, name: PolicyMapLayout.exactMapName(endpoint:),
            template: exactTemplate)
        // Opened again from their pins by the endpoints that get full-length entries; the others never need them.
        for id in hashes { closeExactPolicyMap(id) }
        return Set(hashes)
    }

    /// Removes every entry of the endpoint's policy maps, keeping the maps in place; false, emptying nothing, when
    /// either map is not there.
    func clearPolicyMaps(_ id: UInt32) throws -> Bool {
        guard let trie = try policyMap(id, create: false), let hash = try exactPolicyMap(id) else { return false }
        try policyTable.clear(endpoint: id, keys: try hash.entries().map(\.key))
        for map in [trie, hash] { try map.map.deleteBatch(try map.map.keys()) }
        closeExactPolicyMap(id)
        return true
    }

    /// Lets go of the descriptor of the endpoint's hash, which stays in place: held open only while it has entries,
    /// so a node of endpoints without full-length slots holds one descriptor per endpoint, not two.
    func closeExactPolicyMap(_ id: UInt32) {
        datapath.closeInnerMap(name: PolicyMapLayout.exactMapName(endpoint: id))
    }

    /// The endpoints' full-length keys in cache-line buckets, in front of their hashes.
    var policyTable: PolicyTable { get throws { try PolicyTable(datapath: datapath) } }

    /// How many endpoints the outer policy map holds at most.
    var policyMapSlots: Int { (try? datapath.map(PolicyMapLayout.outerMap).info.maxEntries) ?? 0 }

    /// The endpoint's policy map, created (and pinned) when it does not exist yet.
    func policyMap(_ id: UInt32, create: Bool = true) throws -> TypedMap<na_policy_key, na_policy_value>? {
        guard
            let map = try datapath.innerMap(
                outer: PolicyMapLayout.outerMap, key: id, name: PolicyMapLayout.mapName(endpoint: id),
                create: create ? template : nil)
        else { return nil }
        return try TypedMap(map)
    }

    /// The endpoint's hash of full-length keys (nil: it has none).
    func exactPolicyMap(_ id: UInt32) throws -> TypedMap<na_policy_key, na_policy_value>? {
        guard
            let map = try datapath.innerMap(
                outer: PolicyMapLayout.exactOuterMap, key: id, name: PolicyMapLayout.exactMapName(endpoint: id),
                create: nil)
        else { return nil }
        return try TypedMap(map)
    }

    /// The endpoint's hash with room for `adding` more entries: created at the size it needs, or replaced by a
    /// larger copy swapped into the outer map in one update, so the datapath never sees it without its entries.
    private func exactPolicyMap(
        _ id: UInt32, room adding: Int, current: TypedMap<na_policy_key, na_policy_value>?
    ) throws -> TypedMap<na_policy_key, na_policy_value> {
        let held = try current?.map.countEntries() ?? 0
        let needed = min(held + adding, policyMapEntries)
        if let current, current.map.info.maxEntries >= needed { return current }
        let capacity = Self.exactCapacity(for: held + adding, limit: policyMapEntries)
        let name = PolicyMapLayout.exactMapName(endpoint: id)
        guard let current else {
            var template = exactTemplate
            template.maxEntries = capacity
            guard
                let map = try datapath.innerMap(
                    outer: PolicyMapLayout.exactOuterMap, key: id, name: name, create: template)
            else { throw AgentError.datapath("creating the policy hash of endpoint \(id)") }
            return try TypedMap(map)
        }
        let larger = try largerCopy(of: current, name: name, capacity: capacity)
        try datapath.replaceInnerMap(outer: PolicyMapLayout.exactOuterMap, key: id, name: name, with: larger)
        return try TypedMap(larger)
    }

    /// A copy of the endpoint's hash `current` with room for `capacity` entries, not yet in the outer map.
    private func largerCopy(
        of current: TypedMap<na_policy_key, na_policy_value>, name: String, capacity: Int
    ) throws -> BPFMap {
        let shape = exactTemplate
        let larger = try BPFMap.create(
            type: shape.type, name: name, keySize: shape.keySize, valueSize: shape.valueSize, maxEntries: capacity,
            flags: shape.flags)
        let typed = try TypedMap<na_policy_key, na_policy_value>(larger)
        for (key, value) in try current.entries() { try typed.update(key, value) }
        return larger
    }

    /// Replaces, in one outer-map update for all, each hash that has no room for its endpoint's coming full-length
    /// slots (`adding`, as `applyPolicy` counts them) by a larger copy, which `applyPolicy` then finds big enough.
    /// `held`: how many entries the caller knows the hash holds (its realized full-length slots); nil counts them
    /// in the kernel, a walk of every bucket that for the fifty endpoints a new peer reaches cost a create more
    /// than a millisecond. Should the caller's count fall short, `applyPolicy` grows the hash when it is full.
    func growExactPolicyMaps(_ needs: [(id: UInt32, adding: Int, held: Int?)]) throws {
        var larger: [(key: UInt32, name: String, map: BPFMap)] = []
        for (id, adding, known) in needs where adding > 0 {
            guard let current = try exactPolicyMap(id) else { continue }  // created at its size by `applyPolicy`
            let held = try known ?? current.map.countEntries()
            guard current.map.info.maxEntries < min(held + adding, policyMapEntries) else { continue }
            let name = PolicyMapLayout.exactMapName(endpoint: id)
            let capacity = Self.exactCapacity(for: held + adding, limit: policyMapEntries)
            larger.append((id, name, try largerCopy(of: current, name: name, capacity: capacity)))
        }
        try datapath.replaceInnerMaps(outer: PolicyMapLayout.exactOuterMap, larger)
    }

    /// Writes `add` (new or changed slots) before removing `remove`, so the map never passes through a state with
    /// fewer allowed or denied flows than both the old and the new policy agree on. Full-length slots go to the
    /// endpoint's hash, the others to its trie; a removed full-length slot is deleted from both (pins of an agent
    /// without the hash have it in the trie). `grown`: the caller made room for these adds with
    /// `growExactPolicyMaps`, so an existing hash is not counted again (a batch walk of the hash in the kernel, which
    /// for the endpoints a new peer reaches cost more than writing their entries).
    func applyPolicy(_ id: UInt32, add: [PolicyEntry], remove: [PolicyEntry.Key], grown: Bool = false) throws {
        guard let trie = try policyMap(id) else { return }
        let exactAdds = add.count { PolicyMapLayout.isExact($0.key) }
        // The hash is opened only for full-length slots: an endpoint without any never holds its descriptor.
        var exact = exactAdds > 0 || remove.contains(where: PolicyMapLayout.isExact) ? try exactPolicyMap(id) : nil
        if exactAdds > 0 && !(grown && exact != nil) {
            exact = try exactPolicyMap(id, room: exactAdds, current: exact)
        }
        var table: [(key: na_policy_key, value: na_policy_value?)] = []
        for entry in add {
            let key = PolicyMapLayout.key(entry.key)
            if let current = exact, PolicyMapLayout.isExact(entry.key) {
                do {
                    try current.update(key, PolicyMapLayout.value(entry))
                } catch let error as AgentError where grown && error.errno == E2BIG {
                    // Full although grown for these adds: the count it was grown by fell short.
                    exact = try exactPolicyMap(id, room: exactAdds, current: current)
                    try exact?.update(key, PolicyMapLayout.value(entry))
                }
                table.append((key, PolicyMapLayout.value(entry)))
            } else {
                try trie.update(key, PolicyMapLayout.value(entry))
            }
        }
        // The table after the hash's adds and before its removals: a key it drops is already absent from the
        // hash's point of view only once the hash drops it too, right after.
        table += remove.filter(PolicyMapLayout.isExact).map { (PolicyMapLayout.key($0), nil) }
        if !table.isEmpty { try policyTable.apply(endpoint: id, table) }
        for slot in remove {
            let key = PolicyMapLayout.key(slot)
            if PolicyMapLayout.isExact(slot) { try exact?.delete(key) }
            try trie.delete(key)
        }
    }

    /// What the endpoint's policy maps hold now (after a restart, the truth to diff against); the hash wins over
    /// a full-length copy in the trie, as in the datapath.
    func realizedPolicy(_ id: UInt32) throws -> PolicyMapEntries {
        guard let trie = try policyMap(id, create: false) else { return [] }
        let exact = try exactPolicyMap(id)?.entries() ?? []
        if exact.isEmpty { closeExactPolicyMap(id) }
        return PolicyMapEntries(
            (try trie.entries() + exact).lazy.map { PolicyMapLayout.entry(key: $0.key, value: $0.value) })
    }

    /// Moves the full-length entries a trie holds (pins of an agent without the hash) into the hash, each written
    /// there before it leaves the trie. Returns how many moved.
    @discardableResult
    func moveExactEntriesOutOfTrie(_ id: UInt32) throws -> Int {
        guard let trie = try policyMap(id, create: false) else { return 0 }
        let full = try trie.entries().filter {
            PolicyMapLayout.isExact(PolicyMapLayout.entry(key: $0.key, value: $0.value).key)
        }
        guard !full.isEmpty else { return 0 }
        let exact = try exactPolicyMap(id, room: full.count, current: try exactPolicyMap(id))
        for (key, value) in full {
            try exact.update(key, value)
            try trie.delete(key)
        }
        return full.count
    }

    /// Removes the endpoint's trie and hash, both outer-map deletes waiting for one grace period together.
    func removePolicyMap(_ id: UInt32) throws {
        try removePolicyMaps([id])
    }

    /// Removes the policy maps of every id in `ids`, waiting for one grace period for all of them.
    func removePolicyMaps(_ ids: [UInt32]) throws {
        let table = try policyTable
        for id in ids {
            try table.clear(endpoint: id, keys: try exactPolicyMap(id)?.entries().map(\.key) ?? [])
        }
        try datapath.removeInnerMaps(
            ids.flatMap { id in
                [
                    (PolicyMapLayout.exactOuterMap, id, PolicyMapLayout.exactMapName(endpoint: id)),
                    (PolicyMapLayout.outerMap, id, PolicyMapLayout.mapName(endpoint: id)),
                ]
            })
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
        let ifindex = UInt32(bitPattern: endpoint.ifindex)
        if let current = try map.lookup(ifindex), bytesOf(current) == bytesOf(info) { return }
        // Packets read the row from na_endpoints while it changes; its slot is filled again after a grace period.
        try datapath.endpointSlots.withdraw(ifindex)
        try map.update(ifindex, info)
        datapath.endpointSlots.publish(ifindex)
    }

    func removeEndpointInfo(ifindex: Int32) throws {
        let map: TypedMap<UInt32, na_endpoint_info> = try datapath.typedMap("na_endpoints")
        try datapath.endpointSlots.withdraw(UInt32(bitPattern: ifindex))
        try map.delete(UInt32(bitPattern: ifindex))
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

    /// Attaches the endpoint's programs without waiting for tcx links: creates keep their pace while endpoints
    /// churn, and the hooks move onto links once they stop (`TCXMoves`).
    func attachPrograms(ifindex: Int32) throws {
        try datapath.attachTC(
            ingress: Self.fromEndpoint, egress: Self.toEndpoint, ifindex: ifindex, deferringLinks: true)
    }

    func detachPrograms(ifindex: Int32) {
        datapath.detachTC(ifindex: ifindex)
    }
}
