import DatapathCore
import Policy

/// Saving the agent's state after every change, and restoring it at start before the API serves.
extension NodeAgent {
    func persist(_ state: AgentState) throws {
        let endpoints = state.endpoints.values.sorted { $0.id < $1.id }.map { endpoint -> JSON in
            var object = endpoint.json(identityLabels: nil).objectValue ?? [:]
            object["identity"] = .int(Int64(endpoint.identity))
            return .object(object)
        }
        let identities = state.identities.identities.filter { !$0.isReserved }.map { identity -> JSON in
            ["id": .int(Int64(identity.id)), "labels": .array(identity.labels.strings.map { .string($0) })]
        }
        try store.write(
            AgentState.documentName,
            [
                "version": 1, "endpoints": .array(endpoints), "identities": .array(identities),
                "policy": [
                    "revision": .int(Int64(state.policy.revision)), "documents": .array(state.policy.storedJSON),
                    "rule-names": .object(
                        Dictionary(uniqueKeysWithValues: state.policy.ruleNames.map { ("\($0.key)", JSON.string($0.value)) })),
                ],
            ])
    }

    /// Rebuilds state from the state directory and the pinned maps. The pinned maps keep enforcing the old policy
    /// throughout: entries are only added, then stale ones removed, never cleared first (fail closed).
    func restore() throws {
        try state.withLock { state in
            guard let document = try store.read(AgentState.documentName) else {
                try refreshHostAddresses(&state)
                try removeOrphanedRows(state)
                return
            }
            if let policy = document["policy"] {
                let revision = UInt64(policy["revision"]?.intValue ?? 0)
                var names: [UInt32: String] = [:]
                for (id, name) in policy["rule-names"]?.objectValue ?? [:] {
                    if let number = UInt32(id), let text = name.stringValue { names[number] = text }
                }
                try state.policy.restore(
                    documents: policy["documents"]?.arrayValue ?? [], ruleNames: names, revision: revision)
            }
            for item in document["identities"]?.arrayValue ?? [] {
                guard let id = item["id"]?.intValue, let labels = item["labels"]?.arrayValue else { continue }
                let set = try LabelSet(parsing: labels.compactMap(\.stringValue))
                _ = try state.identities.restore(identity: UInt32(id), labels: set)
            }
            var restoredCount = 0
            var vanished: [Endpoint] = []
            for item in document["endpoints"]?.arrayValue ?? [] {
                guard let id = item["id"]?.intValue, let identity = item["identity"]?.intValue else { continue }
                let request = try EndpointChangeRequest(json: item.removingKeys(Self.derivedFields), id: UInt32(id))
                let oldIndex = Int32(item["interface-index"]?.intValue ?? 0)
                let endpoint = Endpoint(
                    id: UInt32(id), interfaceName: request.interfaceName, ifindex: oldIndex, ipv4: request.ipv4,
                    ipv6: request.ipv6, labels: request.labels, k8sNamespace: request.k8sNamespace,
                    k8sPodName: request.k8sPodName, containerID: request.containerID, identity: UInt32(identity),
                    state: .regenerating, policyRevision: UInt64(item["policy-revision"]?.intValue ?? 0),
                    enforceIngress: item["policy-enforcement"]?["ingress"]?.boolValue ?? false,
                    enforceEgress: item["policy-enforcement"]?["egress"]?.boolValue ?? false)
                // The restored identity table holds one reference per identity; endpoints add theirs.
                _ = try state.identities.acquire(request.labels)
                guard let ifindex = Interfaces.index(of: request.interfaceName), ifindex == oldIndex else {
                    vanished.append(endpoint)
                    state.endpoints[endpoint.id] = endpoint
                    continue
                }
                state.endpoints[endpoint.id] = endpoint
                state.realized[endpoint.id] = try endpointDatapath.realizedPolicy(endpoint.id)
                restoredCount += 1
            }
            // Drop the table's own references: from now on only endpoints hold identities.
            for identity in state.identities.identities where !identity.isReserved {
                _ = try state.identities.release(identity.id)
            }
            for endpoint in vanished {
                logger.warning(
                    "endpoint's interface is gone; removing it",
                    metadata: ["endpoint": "\(endpoint.id)", "interface": "\(endpoint.interfaceName)"])
                try removeEndpoint(endpoint, state: &state)
                registry.broadcast(.endpointRemoved(id: endpoint.id, addresses: endpoint.addresses.map(\.description)))
            }
            try regenerateAll(&state, reason: "restore")
            for endpoint in state.endpoints.values {
                for address in endpoint.addresses { try ipcache.set(address, identity: endpoint.identity) }
                try endpointDatapath.attachPrograms(ifindex: endpoint.ifindex)
            }
            try refreshHostAddresses(&state)
            try removeOrphanedRows(state)
            try persist(state)
            logger.info(
                "state restored",
                metadata: [
                    "endpoints": "\(restoredCount)", "removed": "\(vanished.count)",
                    "policy-revision": "\(state.policy.revision)",
                ])
        }
    }

    static let derivedFields: Set<String> = [
        "id", "interface-index", "state", "policy-revision", "identity", "policy-enforcement",
    ]

    /// Endpoint rows and policy maps in the datapath that no endpoint in state owns (left by a crash mid-change).
    private func removeOrphanedRows(_ state: AgentState) throws {
        let known = Set(state.endpoints.values.map(\.ifindex))
        for row in try endpointDatapath.endpointRows() where !known.contains(row.ifindex) {
            endpointDatapath.detachPrograms(ifindex: row.ifindex)
            try endpointDatapath.removeEndpointInfo(ifindex: row.ifindex)
        }
        let ids = Set(state.endpoints.keys.map { PolicyMapLayout.mapName(endpoint: $0) })
        for name in datapath.pinnedInnerMapNames(prefix: PolicyMapLayout.namePrefix) where !ids.contains(name) {
            if let id = UInt32(name.dropFirst(PolicyMapLayout.namePrefix.count)) {
                try endpointDatapath.removePolicyMap(id)
            }
        }
        try removeOrphanedAddresses(state)
    }

    /// ipcache entries for single addresses that carry an endpoint's or the host's identity but belong to no
    /// endpoint in state and are no longer the node's: a crash between programming an endpoint and saving it, or
    /// an address the node lost while the agent was down. Prefix identities (CIDR rules) are the plugin's business.
    private func removeOrphanedAddresses(_ state: AgentState) throws {
        let owned = Set(state.endpoints.values.flatMap(\.addresses))
        let map: TypedMap<na_ipcache_key, na_ipcache_value> = try datapath.typedMap("na_ipcache")
        for (key, value) in try map.entries() {
            guard let address = IPAddress(familyByte: key.family, key: tupleBytes(key.addr)),
                Int(key.prefixlen) - Int(NA_IPCACHE_PREFIX_BASE) == address.bitLength
            else { continue }
            let identity = value.identity
            let endpointIdentity = identity >= IdentityAllocator.firstLocal && identity < UInt32(NA_ID_LOCAL_CIDR_BASE)
            let hostIdentity = identity == UInt32(NA_ID_HOST.rawValue)
            if (endpointIdentity && !owned.contains(address)) || (hostIdentity && !state.hostAddresses.contains(address)) {
                _ = try map.delete(key)
            }
        }
    }
}

extension JSON {
    func removingKeys(_ keys: Set<String>) -> JSON {
        guard var object = objectValue else { return self }
        for key in keys { object.removeValue(forKey: key) }
        return .object(object)
    }
}
