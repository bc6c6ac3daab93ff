import CGlibc
import DatapathCore
import FoundationEssentials
import Policy

/// Saving the agent's state after every change, and restoring it at start before the API serves.
///
/// The policy is one document, an array: a header (rule names, revision), then the policy documents as they were
/// submitted, read back one at a time (version 2 held them inside the header). Each endpoint is a document of its
/// own under `endpoints/`, carrying its identity's number and labels, so identities need no document: they exist
/// because endpoints hold them. A change writes only what it changed, one atomic file replacement, which keeps the
/// cost of an endpoint change independent of how many endpoints there are.
extension NodeAgent {
    static let policyDocument = "policy"
    static let endpointDirectory = "endpoints"

    static func endpointDocument(_ id: UInt32) -> String { "\(endpointDirectory)/\(id)" }

    /// Whether there is saved state to restore.
    static func hasSavedState(_ store: StateStore) -> Bool {
        FileManager.default.fileExists(atPath: store.path(policyDocument))
            || FileManager.default.fileExists(atPath: store.path(AgentState.documentName))
            || !store.names(in: endpointDirectory).isEmpty || !store.names(in: serviceDirectory).isEmpty
    }

    func persistPolicy(_ state: AgentState) throws {
        let names = state.policy.ruleNames.map { ("\($0.key)", JSON.string($0.value)) }
        let header: JSON = [
            "version": 3, "revision": .int(Int64(state.policy.revision)),
            "rule-names": .object(Dictionary(uniqueKeysWithValues: names)),
        ]
        // The documents are spliced in as stored: turning hundreds of them back into values to serialize them again
        // would cost more than the rest of a one-rule change.
        try store.write(Self.policyDocument, bytes: state.policy.storedJSONArray(after: header.serializedBytes()))
    }

    func persistEndpoint(_ endpoint: Endpoint, _ state: AgentState) throws {
        var object =
            endpoint.json(identityLabels: state.identities.identity(id: endpoint.identity)?.labels)
            .removingKeys(["state", "policy-revision", "policy-enforcement"]).objectValue ?? [:]
        object["version"] = 2
        try store.write(Self.endpointDocument(endpoint.id), .object(object))
    }

    func forgetEndpoint(_ id: UInt32) throws {
        try store.remove(Self.endpointDocument(id))
    }

    /// Rebuilds state from the state directory and the pinned maps. The pinned maps keep enforcing the old policy
    /// throughout: entries are only added, then stale ones removed, never cleared first (fail closed).
    func restore() throws {
        try state.withLock { state in
            let legacy = try store.read(AgentState.documentName)
            let migrated = legacy != nil
            // Until every endpoint's policy is back, the programs look every full-length key up in its hash too.
            try endpointDatapath.policyTable.suspend()
            try restoreSavedPolicy(legacy: legacy, into: &state)
            try restoreClusterCache(&state)
            var restoredCount = 0
            var vanished: [(endpoint: Endpoint, reason: String)] = []
            var rows: [Int32: EndpointDatapath.Row] = [:]
            for row in try endpointDatapath.endpointRows() { rows[row.ifindex] = row }
            for item in try savedEndpoints(legacy: legacy) {
                var endpoint: Endpoint
                do {
                    endpoint = try restoredEndpoint(item, identities: &state.identities)
                } catch let error as AgentError where error.code == .invalidField {
                    // Saved by an earlier version that accepted it (a reserved or another namespace's label): not
                    // restored; the orphan sweep below removes what it has in the datapath.
                    logger.error(
                        "saved endpoint is refused; removing it",
                        metadata: ["endpoint": "\(item["id"]?.intValue ?? 0)", "error": "\(error.message)"])
                    if let id = item["id"]?.intValue.flatMap({ UInt32(exactly: $0) }) { try forgetEndpoint(id) }
                    continue
                }
                guard let ifindex = Interfaces.index(of: endpoint.interfaceName), ifindex == endpoint.ifindex else {
                    vanished.append((endpoint, "endpoint's interface is gone; removing it"))
                    state.endpoints[endpoint.id] = endpoint
                    continue
                }
                // Earlier versions accepted any interface, lo and the uplink included.
                guard let driver = Interfaces.driver(of: endpoint.interfaceName),
                    Interfaces.endpointDrivers.contains(driver)
                else {
                    vanished.append((endpoint, "endpoint's interface is not a veth or netkit interface; removing it"))
                    state.endpoints[endpoint.id] = endpoint
                    continue
                }
                endpoint.ifindex = ifindex
                // What the datapath enforces for it: the regeneration below moves its policy generation only if the
                // map or the enforcement must change (a crash before saving a change leaves the map ahead of the
                // saved state, which shows as a difference), so conntrack entries are not all re-checked on restart.
                if let row = rows[ifindex], row.id == endpoint.id {
                    endpoint.policyGeneration = row.policyGeneration
                    endpoint.enforceIngress = row.enforceIngress
                    endpoint.enforceEgress = row.enforceEgress
                }
                state.endpoints[endpoint.id] = endpoint
                try endpointDatapath.moveExactEntriesOutOfTrie(endpoint.id)
                state.realized[endpoint.id] = try endpointDatapath.realizedPolicy(endpoint.id)
                restoredCount += 1
            }
            for (endpoint, reason) in vanished {
                logger.warning(
                    "\(reason)", metadata: ["endpoint": "\(endpoint.id)", "interface": "\(endpoint.interfaceName)"])
                try removeEndpoint(endpoint, state: &state)
                try forgetEndpoint(endpoint.id)
                registry.broadcast(.endpointRemoved(id: endpoint.id, addresses: endpoint.addresses.map(\.description)))
            }
            try regenerateAll(&state, reason: "restore")
            for endpoint in state.endpoints.values {
                for address in endpoint.addresses { try ipcache.set(address, identity: endpoint.identity) }
                try endpointDatapath.attachPrograms(ifindex: endpoint.ifindex)
            }
            try programRemoteEndpoints(state)
            try refreshHostAddresses(&state)
            try removeOrphanedRows(&state)
            let realized = state.realized
            try endpointDatapath.policyTable.rebuild(
                Array(realized.keys),
                holds: { id, key, value in
                    guard let entry = realized[id]?[PolicyMapLayout.entry(key: key, value: value).key] else {
                        return false
                    }
                    return PolicyMapLayout.isExact(entry.key) && bytesOf(PolicyMapLayout.value(entry)) == bytesOf(value)
                },
                entries: { id in
                    (realized[id] ?? []).filter { PolicyMapLayout.isExact($0.key) }.map {
                        (PolicyMapLayout.key($0.key), PolicyMapLayout.value($0))
                    }
                })
            if migrated {
                try persistPolicy(state)
                for endpoint in state.endpoints.values { try persistEndpoint(endpoint, state) }
                try store.remove(AgentState.documentName)
            }
            _ = cglibc_release_free_heap()
            logger.info(
                "state restored",
                metadata: [
                    "endpoints": "\(restoredCount)", "removed": "\(vanished.count)",
                    "policy-revision": "\(state.policy.revision)",
                ])
        }
        try restoreServices()
    }

    /// The saved policy, into `state`: from the policy document, its documents parsed one at a time (no tree of
    /// hundreds of them at once), or from the single document of earlier versions (`legacy`).
    private func restoreSavedPolicy(legacy: JSON?, into state: inout AgentState) throws {
        var first: JSON?
        var documents: [PolicyDocument] = []
        // Each stored document as it was submitted, one at a time; `position` names it in an error.
        func add(_ element: JSON, at position: Int) throws(AgentError) {
            documents.append(try PolicyParser.parseDocument(element, path: "[\(position)]"))
        }
        let whole: JSON?
        if let legacy {
            whole = legacy["policy"]
        } else {
            whole = try store.read(Self.policyDocument) { (element: JSON) throws(AgentError) in
                guard first != nil else { return first = element }
                try add(element, at: documents.count + 1)
            }
        }
        guard let header = whole ?? first else { return }
        // Version 2, and the single document of earlier versions, held the documents inside the header.
        if let saved = header["documents"]?.arrayValue {
            for (position, element) in saved.enumerated() { try add(element, at: position) }
        }
        var names: [UInt32: String] = [:]
        for (id, name) in header["rule-names"]?.objectValue ?? [:] {
            if let number = UInt32(id), let text = name.stringValue { names[number] = text }
        }
        state.policy.restore(
            documents: documents, ruleNames: names, revision: UInt64(header["revision"]?.intValue ?? 0))
    }

    /// The saved endpoint records; from the single document of earlier versions (`legacy`) when that is what the
    /// directory holds.
    private func savedEndpoints(legacy: JSON?) throws -> [JSON] {
        if let legacy {
            var labelsByIdentity: [Int64: JSON] = [:]
            for item in legacy["identities"]?.arrayValue ?? [] {
                if let id = item["id"]?.intValue { labelsByIdentity[id] = item["labels"] ?? [] }
            }
            let endpoints = (legacy["endpoints"]?.arrayValue ?? []).map { item -> JSON in
                guard var object = item.objectValue, let id = item["identity"]?.intValue else { return item }
                object["identity"] = ["id": .int(id), "labels": labelsByIdentity[id] ?? []]
                return .object(object)
            }
            return endpoints
        }
        return try store.names(in: Self.endpointDirectory).compactMap { name in
            try store.read("\(Self.endpointDirectory)/\(name)")
        }
    }

    /// An endpoint from its saved record, holding its identity again: the same number for the same labels.
    private func restoredEndpoint(_ item: JSON, identities: inout IdentityAllocator) throws -> Endpoint {
        guard let id = item["id"]?.intValue, let number = UInt32(exactly: id) else {
            throw AgentError.internal("saved endpoint without an id: \(item)")
        }
        let request = try EndpointChangeRequest(json: item.removingKeys(Self.derivedFields), id: number)
        var identity: UInt32
        let savedNumber = item["identity"]?["id"]?.intValue.flatMap { UInt32(exactly: $0) }
        let savedLabels = try item["identity"]?["labels"]?.arrayValue.map {
            try LabelSet(parsing: $0.compactMap(\.stringValue))
        }
        if let savedNumber, let savedLabels, savedLabels == identities.filter.apply(request.labels),
            let restored = try? identities.restore(identity: savedNumber, labels: savedLabels)
        {
            identity = restored.id
        } else {
            // The labels' identity changed meaning (another label filter) or the number is taken: allocate afresh.
            identity = try identities.acquire(request.labels).id
            logger.warning(
                "endpoint's saved identity could not be kept",
                metadata: [
                    "endpoint": "\(id)", "saved": "\(savedNumber.map { "\($0)" } ?? "none")", "now": "\(identity)",
                ])
        }
        return Endpoint(
            id: number, interfaceName: request.interfaceName, ifindex: Int32(item["interface-index"]?.intValue ?? 0),
            ipv4: request.ipv4, ipv6: request.ipv6, labels: request.labels, k8sNamespace: request.k8sNamespace,
            k8sPodName: request.k8sPodName, containerID: request.containerID, identity: identity,
            state: .regenerating, policyRevision: 0, enforceIngress: false, enforceEgress: false,
            namedPorts: request.namedPorts)
    }

    static let derivedFields: Set<String> = [
        "id", "interface-index", "state", "policy-revision", "identity", "policy-enforcement", "version",
    ]

    /// Endpoint rows and policy maps in the datapath that no endpoint in state owns (left by a crash mid-change, or
    /// spare maps of the agent before, which are kept as spares again, emptied, up to what creates will use).
    private func removeOrphanedRows(_ state: inout AgentState) throws {
        let known = Set(state.endpoints.values.map(\.ifindex))
        for row in try endpointDatapath.endpointRows() where !known.contains(row.ifindex) {
            endpointDatapath.detachPrograms(ifindex: row.ifindex)
            try endpointDatapath.removeEndpointInfo(ifindex: row.ifindex)
        }
        var orphans: Set<UInt32> = []
        for prefix in [PolicyMapLayout.namePrefix, PolicyMapLayout.exactNamePrefix] {
            for name in datapath.pinnedInnerMapNames(prefix: prefix) {
                if let id = UInt32(name.dropFirst(prefix.count)), state.endpoints[id] == nil { orphans.insert(id) }
            }
        }
        // As a delete leaves them: spares up to their limit, the rest removed (in batches, then the remainder).
        for id in orphans.sorted() { try retirePolicyMaps(id, &state) }
        try removeRetiredPolicyMaps(&state)
        try removeOrphanedAddresses(state)
    }

    /// ipcache entries for single addresses that carry an endpoint's or the host's identity but belong to no
    /// endpoint in state and are no longer the node's: a crash between programming an endpoint and saving it, or
    /// an address the node lost while the agent was down. Prefix identities (CIDR rules) are the plugin's business.
    private func removeOrphanedAddresses(_ state: AgentState) throws {
        let owned = Set(state.endpoints.values.flatMap(\.addresses)).union(remoteAddresses)
        for (prefix, identity) in try ipcache.entries() where prefix.length == prefix.address.bitLength {
            let address = prefix.address
            let endpointIdentity = identity >= IdentityAllocator.firstLocal && identity < UInt32(NA_ID_LOCAL_CIDR_BASE)
            let hostIdentity = identity == UInt32(NA_ID_HOST.rawValue)
            if (endpointIdentity && !owned.contains(address))
                || (hostIdentity && !state.hostAddresses.contains(address))
            {
                try ipcache.remove(address)
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
