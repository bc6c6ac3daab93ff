import DatapathCore

/// Policy maps made ahead of the endpoints that will use them.
///
/// An endpoint's policy maps live in the hash-of-maps `na_policy` and `na_policy_exact` under its id, and the kernel
/// waits for an RCU grace period after every update of a map-in-map (10-15 ms, more than everything else a create
/// does). One batch update waits once for any number of maps, so the agent keeps empty maps in place under the ids
/// the next creates will most likely use: those following the id just created (clients that number endpoints in
/// sequence) and the lowest free ones (the CNI plugin takes the lowest free id). A create under a spare id fills
/// maps already in place. The datapath never reads a spare: it looks policy up by the id of an endpoint row.
extension NodeAgent {
    /// How many ids ahead of the last create get spare maps, and how many lowest free ids.
    static let spareWindow: UInt32 = 64
    static let spareLowestFree = 8
    /// At most this many spares: clients whose ids leave gaps would otherwise leave a window of them behind each.
    static let spareLimit = 2 * Int(spareWindow) + spareLowestFree

    /// Makes spare maps for the ids the next creates will most likely use after endpoint `id` was created, once
    /// half a window of them is missing, so one grace period serves many creates. Best effort: a failure leaves
    /// those creates the ordinary way. Spares never take more than half of the outer map's slots, which endpoints
    /// need first, nor more than `spareLimit`.
    func provisionSparePolicyMaps(after id: UInt32, _ state: inout AgentState) {
        // Ids looked up without copying the endpoint out: on a node of 10,000 endpoints numbered from 1, finding
        // the lowest free ids looks at every one.
        func free(_ id: UInt32) -> Bool {
            !state.endpoints.contains(id: id) && !state.retiredPolicyMaps.contains(id)
        }
        var wanted: [UInt32] = []
        var candidate = id
        while wanted.count < Int(Self.spareWindow), candidate < Self.maxEndpointID {
            candidate += 1
            if free(candidate) { wanted.append(candidate) }
        }
        // The lowest free ids add at most `spareLowestFree` to what is missing: looked for only when that could
        // make enough, with ids in sequence on fewer than a third of the creates.
        let unprovisioned = wanted.count { !state.sparePolicyMaps.contains($0) }
        guard unprovisioned + Self.spareLowestFree >= Int(Self.spareWindow) / 2 else { return }
        var lowest: [UInt32] = []
        candidate = 0
        while lowest.count < Self.spareLowestFree, candidate < Self.maxEndpointID {
            candidate += 1
            if free(candidate) { lowest.append(candidate) }
        }
        let missing = Set(wanted + lowest).subtracting(state.sparePolicyMaps)
        guard missing.count >= Int(Self.spareWindow) / 2 else { return }
        let datapath = endpointDatapath
        guard state.sparePolicyMaps.count + missing.count <= Self.spareLimit,
            state.endpoints.count + state.sparePolicyMaps.count + missing.count <= datapath.policyMapSlots / 2
        else { return }
        do {
            state.sparePolicyMaps.formUnion(try datapath.provisionPolicyMaps(missing.sorted()))
        } catch {
            logger.warning("making spare policy maps failed", metadata: ["error": "\(error)"])
        }
    }

    /// How many deleted endpoints' maps wait to be removed together (`retirePolicyMaps`).
    static let retireBatch = 32

    /// Takes the policy maps of a deleted endpoint out of use without waiting for the kernel: emptied, they stay in
    /// place as a spare for the next endpoint under that id (the CNI plugin takes the lowest free id) while spares
    /// are fewer than `spareLimit`; beyond that they wait, empty, until `retireBatch` of them are removed in one
    /// batch, a grace period for all (a delete waited for one of its own). Either way the datapath reads them no
    /// more: it looks policy up by the id of an endpoint row, and the row is gone. An endpoint created under a
    /// waiting id takes its maps back. Maps missing either half are removed at once.
    func retirePolicyMaps(_ id: UInt32, _ state: inout AgentState) throws {
        let datapath = endpointDatapath
        guard try datapath.clearPolicyMaps(id) else { return try datapath.removePolicyMap(id) }
        if state.sparePolicyMaps.count < Self.spareLimit {
            state.sparePolicyMaps.insert(id)
            return
        }
        state.retiredPolicyMaps.insert(id)
        // Waiting maps hold slots of the outer map, which endpoints need first.
        let slotsUsed = state.endpoints.count + state.sparePolicyMaps.count + state.retiredPolicyMaps.count
        let nearlyFull = slotsUsed + Self.retireBatch >= datapath.policyMapSlots
        if state.retiredPolicyMaps.count >= Self.retireBatch || nearlyFull { try removeRetiredPolicyMaps(&state) }
    }

    /// Removes every waiting map of `retirePolicyMaps` in one batch.
    func removeRetiredPolicyMaps(_ state: inout AgentState) throws {
        guard !state.retiredPolicyMaps.isEmpty else { return }
        try endpointDatapath.removePolicyMaps(state.retiredPolicyMaps.sorted())
        state.retiredPolicyMaps.removeAll()
    }

    /// The highest endpoint id the API accepts.
    static let maxEndpointID: UInt32 = 65535
}
