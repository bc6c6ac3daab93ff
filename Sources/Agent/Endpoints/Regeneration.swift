import DatapathCore
import Policy

/// Turning the policy repository into each endpoint's policy map.
extension NodeAgent {
    struct DesiredPolicy {
        /// As the endpoint's policy map should hold them (`PolicyEntry.mapped`); empty when `changes` are given.
        var entries: PolicyMapEntries
        var enforceIngress: Bool
        var enforceEgress: Bool
        /// The ports with ingress HTTP rules and what the L7 datapath decides on them.
        var http: [HTTPPortPolicy] = []
        /// The changes from the realized entries, when they are known without comparing every entry (an update for
        /// changed peers only), applied to the realized entries in place rather than replacing them with a copy;
        /// nil: `entries` are the whole map, `PolicyEntry.diff` gives the changes.
        var changes: (upsert: [PolicyEntry], remove: [PolicyEntry.Key])? = nil
        /// How many entries the map holds afterwards.
        var count: Int

        init(entries: PolicyMapEntries, enforceIngress: Bool, enforceEgress: Bool, http: [HTTPPortPolicy]) {
            self.entries = entries
            self.enforceIngress = enforceIngress
            self.enforceEgress = enforceEgress
            self.http = http
            count = entries.count
        }

        init(
            changes: (upsert: [PolicyEntry], remove: [PolicyEntry.Key]), count: Int, enforceIngress: Bool,
            enforceEgress: Bool
        ) {
            entries = []
            self.changes = changes
            self.count = count
            self.enforceIngress = enforceIngress
            self.enforceEgress = enforceEgress
        }
    }

    /// `peers` prepared once serve every endpoint of one regeneration; nil prepares them for this endpoint alone.
    /// `rules`: the rules selecting the endpoint, when the caller has them already.
    func desiredPolicy(
        for endpoint: Endpoint, in state: AgentState, peers: PolicyPeers? = nil, rules: [IndexedRule]? = nil
    ) -> DesiredPolicy {
        let mode = runtime.withLock { $0.policyEnforcement }
        let labels = policyLabels(of: endpoint, in: state)
        let resolved = PolicyCompiler.resolve(
            rules: rules ?? state.policy.rules(selecting: labels), endpoint: labels,
            peers: peers
                ?? PolicyPeers(
                    state.identityList, services: servicePeers(in: state).resolved(prefixIDs: [:]),
                    namedPorts: namedPortsByIdentity(state), addresses: addressesByIdentity(state)),
            mode: mode, namedPorts: endpoint.namedPorts)
        return DesiredPolicy(
            entries: PolicyMapEntries(resolved.entries.lazy.map(\.mapped)), enforceIngress: resolved.ingressEnforced,
            enforceEgress: resolved.egressEnforced, http: resolved.http)
    }

    /// The named ports of the local endpoints of each identity, which egress rules' named ports resolve against.
    func namedPortsByIdentity(_ state: AgentState) -> [UInt32: [NamedPort]] {
        var ports: [UInt32: Set<NamedPort>] = [:]
        for endpoint in state.endpoints.values where !endpoint.namedPorts.isEmpty {
            ports[endpoint.identity, default: []].formUnion(endpoint.namedPorts)
        }
        return ports.mapValues { Array($0) }
    }

    /// The addresses of the local endpoints of each identity, which a NetworkPolicy's `ipBlock` selects pods by.
    func addressesByIdentity(_ state: AgentState) -> [UInt32: [IPAddress]] {
        var addresses: [UInt32: [IPAddress]] = [:]
        for endpoint in state.endpoints.values { addresses[endpoint.identity, default: []] += endpoint.addresses }
        return addresses
    }

    /// The labels policy selects an endpoint by: its identity's.
    func policyLabels(of endpoint: Endpoint, in state: AgentState) -> LabelSet {
        state.identities.identity(id: endpoint.identity)?.labels ?? endpoint.labels
    }

    /// The endpoints any of `rules` applies to. Policy selects an endpoint by its identity's labels, so each
    /// identity is matched once, however many endpoints share it.
    func endpoints(selectedBy rules: [PolicyRule], in state: AgentState) -> Set<UInt32> {
        guard !rules.isEmpty else { return [] }
        let index = SelectorIndex(Array(Set(rules.map(\.endpointSelector))))
        var selected: [UInt32: Bool] = [:]
        var result: Set<UInt32> = []
        // By index: a for-in over the values copies every endpoint (a retain of each of its fields) to read one.
        let endpoints = state.endpoints.values
        var position = endpoints.startIndex
        while position != endpoints.endIndex {
            defer { position = endpoints.index(after: position) }
            let identity = endpoints[position].identity
            let matches: Bool
            if let known = selected[identity] {
                matches = known
            } else if let labels = state.identities.identity(id: identity)?.labels {
                matches = index.matchesAny(labels)
                selected[identity] = matches
            } else {
                matches = index.matchesAny(endpoints[position].labels)
            }
            if matches { result.insert(endpoints[position].id) }
        }
        return result
    }

    /// The endpoints whose policy can change when `identities` appear or go away: those selected by a rule that
    /// names one of them as a peer.
    func endpointsAffected(byPeers identities: [Identity], in state: AgentState) -> Set<UInt32> {
        endpoints(selectedBy: state.policy.rulesSelectingPeers(identities), in: state)
    }

    /// What peer selection reads besides the rules: every identity (the allocator's, and prefix identities), the
    /// backends of the services rules name, and where some rule needs them the named ports and pod addresses of
    /// each identity. The allocator's identities are listed only for a full set of peers: listing them all costs
    /// more than an update for one changed peer.
    struct PolicyPeerInputs {
        var identities: IdentityAllocator
        var prefixIdentities: [Identity] = []
        var services: [ServiceReference: [UInt32]] = [:]
        var namedPorts: [UInt32: [NamedPort]] = [:]
        var addresses: [UInt32: [IPAddress]] = [:]
        /// No rules: no peer is read.
        var empty = false

        /// Every identity as peer.
        var peers: PolicyPeers {
            guard !empty else { return PolicyPeers([]) }
            return PolicyPeers(
                identities.identities + prefixIdentities, services: services, namedPorts: namedPorts,
                addresses: addresses)
        }

        /// Of `changed`, those that exist now (as `peers` has them), with the same services, named ports and pod
        /// addresses.
        func peers(among changed: Set<UInt32>) -> PolicyPeers {
            guard !empty else { return PolicyPeers([]) }
            return PolicyPeers(
                changed.sorted().compactMap { identities.identity(id: $0) }
                    + prefixIdentities.filter { changed.contains($0.id) },
                services: services, namedPorts: namedPorts, addresses: addresses)
        }
    }

    /// The peer inputs of a regeneration, and the CIDR prefixes (policy's and service backends') it holds
    /// identities for.
    func policyPeerInputs(_ state: AgentState) throws -> (PolicyPeerInputs, prefixes: Set<IPPrefix>) {
        let services = servicePeers(in: state)
        // Service backends outside any pod get prefix identities only where the cidr-policy plugin gives them. A
        // host prefix that is a pod's address is left out: the pod's own ipcache entry is that key, and peer
        // selection reaches the pod through its identity.
        var prefixes = state.policy.cidrPrefixes.union(prefixProvider == nil ? [] : services.allPrefixes)
        if !prefixes.isEmpty {
            prefixes.subtract(
                state.endpoints.values.flatMap(\.addresses).map { IPPrefix(address: $0, length: $0.bitLength) })
        }
        let prefixIDs = try prefixIdentityIDs(prefixes)
        // What is read from every endpoint (named ports, addresses) only where some rule needs it, and nothing of
        // the peers without rules: an endpoint create on a node with thousands would pay for it every time.
        guard !state.policy.rules.isEmpty else {
            return (PolicyPeerInputs(identities: state.identities, empty: true), prefixes)
        }
        let inputs = PolicyPeerInputs(
            identities: state.identities,
            prefixIdentities: try prefixIDs.map { try Self.prefixIdentity($0.key, id: $0.value) },
            services: services.resolved(prefixIDs: prefixIDs),
            namedPorts: state.policy.usesNamedPorts ? namedPortsByIdentity(state) : [:],
            addresses: state.policy.selectsPodsByAddress ? addressesByIdentity(state) : [:])
        return (inputs, prefixes)
    }

    /// Computes every endpoint's policy (or only those in `only`, when the caller knows no other endpoint's policy
    /// can differ) against `state.policy`, checks capacity before touching anything, then updates only the endpoints
    /// whose result changed (adds before removes), giving those whose change may refuse a flow allowed before a new
    /// policy generation (`mayRefuseAllowedFlows`), which makes the datapath re-check their established flows.
    /// Every endpoint is stamped with the current revision.
    ///
    /// `delta`: endpoints (besides `only`) whose policy can differ only in the entries of peer identities that
    /// appeared or went away; they get just those entries recomputed where that is exact (`policy(of:afterPeers:)`),
    /// the full computation otherwise. Ignored when `only` is nil: every endpoint is then computed in full.
    ///
    /// A peer change that also changes which CIDR prefixes hold identities (a pod on an address a `/32` names takes
    /// that ipcache key from the prefix, and gives it back when it leaves) changes the peers of every endpoint whose
    /// rules name the prefix, which neither `only` nor `delta` covers: every endpoint is then computed in full.
    func regenerateAll(
        _ state: inout AgentState, reason: String, only: Set<UInt32>? = nil, delta: PeerDelta? = nil
    ) throws {
        let heldBefore = delta == nil ? nil : prefixProvider?.heldPrefixes
        let (inputs, prefixes) = try policyPeerInputs(state)
        let prefixesChanged = heldBefore.map { $0 != prefixes } ?? false
        let only = prefixesChanged ? nil : only
        let delta = only == nil ? nil : delta
        let full = only ?? Set(state.endpoints.keys)
        let targets = full.union(delta?.endpoints ?? []).compactMap { state.endpoints[$0] }.sorted { $0.id < $1.id }
        // Both built only when some endpoint needs them: a new pod no rule selects needs neither.
        var fullPeers: PolicyPeers?
        var changedPeers: PolicyPeers?
        var incremental = 0
        var desired: [(Endpoint, DesiredPolicy)] = []
        for endpoint in targets {
            if let delta, delta.endpoints.contains(endpoint.id), !full.contains(endpoint.id) {
                if changedPeers == nil { changedPeers = inputs.peers(among: delta.identities) }
                if let policy = policy(
                    of: endpoint, afterPeers: delta.identities, in: state, peers: changedPeers!)
                {
                    desired.append((endpoint, policy))
                    incremental += 1
                    continue
                }
            }
            // An endpoint no rule selects reads no peer (the compiler stops before).
            let rules = state.policy.rules(selecting: policyLabels(of: endpoint, in: state))
            if fullPeers == nil && !rules.isEmpty { fullPeers = inputs.peers }
            var policy = desiredPolicy(for: endpoint, in: state, peers: fullPeers ?? PolicyPeers([]), rules: rules)
            // A result equal to what the map holds shares the realized entries' storage: a full regeneration, where
            // most endpoints come out unchanged, would otherwise hold every endpoint's entries twice.
            if let realized = state.realized[endpoint.id], realized == policy.entries { policy.entries = realized }
            desired.append((endpoint, policy))
        }
        try checkCapacity(desired.map { ($0.0.id, $0.1.count) })
        for (endpoint, policy) in desired { try checkHTTPRulesEnforceable(policy.http, endpoint: endpoint.id) }
        let revision = state.policy.revision
        var generation: UInt32?
        var changed = 0
        // Hashes too small for what comes are replaced together: one grace period rather than one each (a new peer
        // of many endpoints would otherwise grow each of their hashes in turn). Each hash holds the realized
        // full-length entries, counted here rather than in the kernel. The writes are counted, not listed: listed
        // for every endpoint at once, a first import would hold each entry twice.
        try endpointDatapath.growExactPolicyMaps(
            desired.map { endpoint, policy in
                let realized = state.realized[endpoint.id] ?? []
                let adding =
                    policy.changes?.upsert.count { PolicyMapLayout.isExact($0.key) }
                    ?? policy.entries.count { PolicyMapLayout.isExact($0.key) && realized[$0.key] != $0 }
                let held = adding == 0 ? nil : realized.count { PolicyMapLayout.isExact($0.key) }
                return (endpoint.id, adding, held)
            })
        for (endpoint, policy) in desired {
            let (add, remove) =
                policy.changes ?? PolicyMapEntries.diff(from: state.realized[endpoint.id] ?? [], to: policy.entries)
            let refuses = Self.mayRefuseAllowedFlows(add: add, remove: remove, realized: state.realized[endpoint.id])
            // Not held in a variable: a second reference to the realized entries would copy them on the change.
            if !add.isEmpty || !remove.isEmpty || state.realized[endpoint.id]?.isEmpty ?? true {
                try endpointDatapath.applyPolicy(endpoint.id, add: add, remove: remove, grown: true)
                policyFilters.withLock { $0.leftovers.add(withdrawn: PolicyMapLayout.exactKeys(remove)) }
                if policy.changes != nil {
                    state.realized[endpoint.id, default: []].apply(upsert: add, remove: remove)
                } else {
                    state.realized[endpoint.id] = policy.entries
                }
                // Only a removal can leave the hash without full-length entries.
                if (policy.changes == nil || remove.contains(where: PolicyMapLayout.isExact))
                    && !(state.realized[endpoint.id] ?? []).contains { PolicyMapLayout.isExact($0.key) }
                {
                    endpointDatapath.closeExactPolicyMap(endpoint.id)
                }
            }
            try realizeHTTP(policy.http, for: endpoint, in: &state)
            var updated = endpoint
            updated.enforceIngress = policy.enforceIngress
            updated.enforceEgress = policy.enforceEgress
            updated.policyRevision = revision
            if refuses || endpoint.policyGeneration == 0
                || updated.enforceIngress != endpoint.enforceIngress || updated.enforceEgress != endpoint.enforceEgress
            {
                if generation == nil { generation = nextPolicyGeneration() }
                updated.policyGeneration = generation!
            }
            if updated.state == .regenerating || updated.state == .waitingForIdentity {
                updated.state = .ready
            }
            // The row holds the endpoint's fields only: a map that gained allow entries leaves it as it is.
            if updated != endpoint { try endpointDatapath.writeEndpointInfo(updated) }
            if !add.isEmpty || !remove.isEmpty { changed += 1 }
            state.endpoints[endpoint.id] = updated
        }
        // The others' policy is the same under the new revision; their rows and generations stay as they are.
        state.endpoints.setPolicyRevision(revision)
        // Only now that no map refers to them any more may prefixes that left the policy lose their identities.
        try prefixProvider?.release(keeping: prefixes)
        incrementalRegenerations.add(incremental, ordering: .relaxed)
        refreshPolicyFiltersIfDue(&state)
        logger.debug(
            "regenerated",
            metadata: [
                "reason": "\(reason)", "changed": "\(changed)", "incremental": "\(incremental)",
                "revision": "\(revision)",
            ])
    }

    /// Gives every endpoint a new policy generation, so the datapath re-checks all established flows: for a change
    /// that decides flows without being in any policy map (`allow-localhost`).
    func renewPolicyGenerations(_ state: inout AgentState) throws {
        let generation = nextPolicyGeneration()
        for var endpoint in state.endpoints.values {
            endpoint.policyGeneration = generation
            try endpointDatapath.writeEndpointInfo(endpoint)
            state.endpoints[endpoint.id] = endpoint
        }
    }

    /// Whether a change of an endpoint's map (`add` written, `remove` deleted, over `realized`) can refuse a flow
    /// the map allowed before: a removed entry, an entry of a key the map held (its verdict may differ), or a deny
    /// entry. Only then does the endpoint need a new policy generation, which makes the datapath re-check every
    /// established flow of it. Allow entries of new keys refuse nothing: a new peer of fifty endpoints (a pod
    /// created) leaves their generations, rows and established flows as they are.
    static func mayRefuseAllowedFlows(
        add: [PolicyEntry], remove: [PolicyEntry.Key], realized: PolicyMapEntries?
    ) -> Bool {
        if !remove.isEmpty || add.contains(where: \.deny) { return true }
        guard let realized else { return false }
        return add.contains { realized[$0.key] != nil }
    }

    /// A policy generation no endpoint had before (0 is skipped: it means "none yet").
    func nextPolicyGeneration() -> UInt32 {
        let next = policyGenerations.wrappingAdd(1, ordering: .relaxed).newValue
        return next == 0 ? policyGenerations.wrappingAdd(1, ordering: .relaxed).newValue : next
    }

    var prefixProvider: (any PrefixIdentityProvider)? {
        registry.enabled.lazy.compactMap { $0 as? any PrefixIdentityProvider }.first
    }

    /// Identity numbers for the CIDR prefixes policies name, from the CIDR policy plugin.
    func prefixIdentityIDs(_ prefixes: Set<IPPrefix>) throws -> [IPPrefix: UInt32] {
        guard !prefixes.isEmpty else { return [:] }
        guard let provider = prefixProvider else {
            let named = prefixes.map(\.description).sorted().prefix(3).joined(separator: ", ")
            throw AgentError.unsupported("CIDR rules (\(named)) need the cidr-policy plugin, which is disabled")
        }
        return try provider.acquire(prefixes: prefixes)
    }

    /// A prefix's identity as peer selection reads it: `cidr:<prefix>` and reserved world.
    static func prefixIdentity(_ prefix: IPPrefix, id: UInt32) throws -> Identity {
        Identity(
            id: id,
            labels: LabelSet([
                try Label(source: "cidr", key: prefix.description), try Label(source: "reserved", key: "world"),
            ]))
    }

    /// Rejects a change that would not fit some endpoint's policy map, naming the need and the capacity.
    func checkCapacity(_ needs: [(UInt32, Int)]) throws {
        if let (id, count) = needs.first(where: { $0.1 > config.policyMapEntries }) {
            throw AgentError.capacity(
                "endpoint \(id) would need \(count) policy map entries, its map holds \(config.policyMapEntries); "
                    + "nothing was applied")
        }
    }
}
