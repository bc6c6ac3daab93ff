import DatapathCore
import Dispatch
import Policy

extension NodeAgent {
    var endpointDatapath: EndpointDatapath {
        EndpointDatapath(datapath: datapath, policyMapEntries: config.policyMapEntries)
    }
    var ipcache: IPCache { get throws { try IPCache(datapath: datapath) } }

    /// Creates the endpoint, or updates it when `id` exists. Returns it and whether it was created.
    /// Idempotent: the same request again changes nothing. On any failure nothing of it stays applied.
    func putEndpoint(id: UInt32, request: EndpointChangeRequest) throws -> (JSON, created: Bool) {
        try state.withLock { state in
            if let existing = state.endpoints[id] {
                if Self.matches(existing, request) { return (endpointJSON(existing, state), false) }
                // An endpoint is its interface: another interface under this id is another pod, not an update.
                guard existing.interfaceName == request.interfaceName else {
                    throw AgentError.conflict(
                        "endpoint \(id) exists on interface \(existing.interfaceName); delete it first",
                        field: "interface-name")
                }
            }
            if let other = state.endpoints.id(onInterface: request.interfaceName), other != id {
                throw AgentError.conflict(
                    "interface \(request.interfaceName) belongs to endpoint \(other)", field: "interface-name")
            }
            for address in [request.ipv4, request.ipv6].compactMap({ $0 }) {
                if let other = state.endpoints.id(withAddress: address), other != id {
                    let field = address.family == .ipv4 ? "addressing.ipv4" : "addressing.ipv6"
                    throw AgentError.conflict("address \(address) belongs to endpoint \(other)", field: field)
                }
            }
            guard let ifindex = Interfaces.index(of: request.interfaceName) else {
                throw AgentError.invalidField(
                    "interface-name", "no interface named \(request.interfaceName) in the agent's network namespace")
            }
            let driver = Interfaces.driver(of: request.interfaceName)
            guard let driver, Interfaces.endpointDrivers.contains(driver) else {
                let kind = driver.map { "a \($0) interface" } ?? "an interface without a driver"
                throw AgentError.invalidField(
                    "interface-name",
                    "\(request.interfaceName) is \(kind); only veth and netkit interfaces can be endpoints")
            }
            let previous = state.endpoints[id]
            // What a rollback needs besides the endpoint: not a copy of the whole state, which would cost a copy of
            // every endpoint on each change once anything mutates it.
            let undo = (identities: state.identities, hostAddresses: state.hostAddresses)
            // Its spare maps, if it has them, are the endpoint's from here on (a rollback removes them).
            state.sparePolicyMaps.remove(id)
            state.retiredPolicyMaps.remove(id)
            do {
                let endpoint = try realize(
                    id: id, request: request, ifindex: ifindex, previous: previous, state: &state)
                try persistEndpoint(endpoint, state)
                if previous == nil { provisionSparePolicyMaps(after: id, &state) }
                publish(endpoint, previous: previous, state)
                refreshHostAddressesIfDue(&state)
                registry.broadcast(
                    .endpointAdded(id: id, ifindex: ifindex, addresses: endpoint.addresses.map(\.description)))
                logger.info(
                    previous == nil ? "endpoint created" : "endpoint updated",
                    metadata: [
                        "endpoint": "\(id)", "identity": "\(endpoint.identity)",
                        "interface": "\(request.interfaceName)",
                    ])
                return (endpointJSON(endpoint, state), previous == nil)
            } catch {
                rollback(
                    identities: undo.identities, hostAddresses: undo.hostAddresses, previous: previous, from: &state,
                    endpoint: id)
                throw error
            }
        }
    }

    private static func matches(_ endpoint: Endpoint, _ request: EndpointChangeRequest) -> Bool {
        endpoint.interfaceName == request.interfaceName && endpoint.ipv4 == request.ipv4
            && endpoint.ipv6 == request.ipv6
            && endpoint.labels == request.labels && endpoint.k8sNamespace == request.k8sNamespace
            && endpoint.k8sPodName == request.k8sPodName && endpoint.containerID == request.containerID
            && endpoint.namedPorts == request.namedPorts
            && Interfaces.index(of: endpoint.interfaceName) == endpoint.ifindex
    }

    /// Allocates the identity and programs the datapath: policy map first, then the endpoint row and ipcache, then
    /// the tc programs, so the programs never run for this interface before its policy is in place.
    private func realize(
        id: UInt32, request: EndpointChangeRequest, ifindex: Int32, previous: Endpoint?, state: inout AgentState
    ) throws -> Endpoint {
        let replaced = try prepareIdentity(for: request.labels, &state)
        let identity = try state.identities.acquire(request.labels)
        // Identities that appear or go away with this change: peers of other endpoints' rules.
        var peersChanged = replaced + (state.identities.references(identity.id) == 1 ? [identity] : [])
        var unknownPeerChanged = false
        var endpoint = Endpoint(
            id: id, interfaceName: request.interfaceName, ifindex: ifindex, ipv4: request.ipv4, ipv6: request.ipv6,
            labels: request.labels, k8sNamespace: request.k8sNamespace, k8sPodName: request.k8sPodName,
            containerID: request.containerID, identity: identity.id, state: .regenerating,
            policyRevision: 0, enforceIngress: false, enforceEgress: false, namedPorts: request.namedPorts)
        state.endpoints[id] = endpoint
        // Named ports are the destination's: rules of other endpoints that name a port may resolve differently.
        if state.policy.usesNamedPorts && (!request.namedPorts.isEmpty || !(previous?.namedPorts.isEmpty ?? true)) {
            unknownPeerChanged = true
        }
        // So are addresses, for an ipBlock that selects pods by theirs.
        if state.policy.selectsPodsByAddress && previous?.addresses != endpoint.addresses { unknownPeerChanged = true }
        if let previous {
            let old = state.identities.identity(id: previous.identity)
            if try state.identities.release(previous.identity) {
                if let old { peersChanged.append(old) } else { unknownPeerChanged = true }
            }
            for address in previous.addresses where !endpoint.addresses.contains(address) {
                try ipcache.remove(address)
            }
            if previous.ifindex != ifindex {
                endpointDatapath.detachPrograms(ifindex: previous.ifindex)
                try endpointDatapath.removeEndpointInfo(ifindex: previous.ifindex)
            }
        }
        // Besides this endpoint, only endpoints whose rules select an identity that appeared or went away can get a
        // different policy, and only in that identity's entries, unless the endpoint also follows a service whose
        // backends this endpoint joins or leaves.
        try regenerateAll(
            &state, reason: previous == nil ? "endpoint \(id) created" : "endpoint \(id) updated",
            only: unknownPeerChanged
                ? nil
                : endpointsAffected(byBackendAddresses: endpoint.addresses + (previous?.addresses ?? []), in: state)
                    .union([id]),
            delta: PeerDelta(
                identities: Set(peersChanged.map(\.id)), endpoints: endpointsAffected(byPeers: peersChanged, in: state))
        )
        endpoint = state.endpoints[id]!
        for address in endpoint.addresses {
            try ipcache.set(address, identity: endpoint.identity)
        }
        // The addresses are the endpoint's now, whatever the node had on them; a full refresh reads every interface
        // of the node, far too much for each endpoint change on a node with thousands of them.
        state.hostAddresses.subtract(endpoint.addresses)
        try endpointDatapath.attachPrograms(ifindex: ifindex)
        endpoint.state = .ready
        state.endpoints[id] = endpoint
        return endpoint
    }

    /// Undoes a failed change: puts back the endpoint as it was (or removes it), its identities and the host
    /// addresses, and makes the datapath match again. Other endpoints' realized policy is what their maps hold (it is
    /// recorded per endpoint only once written), so regenerating them all brings them back.
    func rollback(
        identities: IdentityAllocator, hostAddresses: Set<IPAddress>, previous: Endpoint?, from state: inout AgentState,
        endpoint id: UInt32
    ) {
        let failed = state.endpoints[id]
        state.identities = identities
        state.hostAddresses = hostAddresses
        state.endpoints[id] = previous
        if let failed, let previous {
            for address in failed.addresses where !previous.addresses.contains(address) { try? ipcache.remove(address) }
        }
        if let failed, previous == nil {
            endpointDatapath.detachPrograms(ifindex: failed.ifindex)
            try? endpointDatapath.removeEndpointInfo(ifindex: failed.ifindex)
            for address in failed.addresses { try? ipcache.remove(address) }
            try? endpointDatapath.removePolicyMap(id)
            state.realized[id] = nil
        }
        do {
            try regenerateAll(&state, reason: "rollback")
            if let previous {
                for address in previous.addresses { try ipcache.set(address, identity: previous.identity) }
                try endpointDatapath.attachPrograms(ifindex: previous.ifindex)
            }
        } catch {
            logger.error("rollback could not restore the datapath", metadata: ["error": "\(error)"])
        }
    }

    func deleteEndpoint(id: UInt32) throws -> JSON {
        try state.withLock { state in
            guard let endpoint = state.endpoints[id] else { throw AgentError.notFound("endpoint \(id) does not exist") }
            let identity = state.identities.identity(id: endpoint.identity)
            // A service backend's address now reads as a prefix: rules naming the service follow it.
            let backendOf = endpointsAffected(byBackendAddresses: endpoint.addresses, in: state)
            // Rules that select pods by address (ipBlock) or resolve its port names can change for any endpoint.
            let anyAffected =
                state.policy.selectsPodsByAddress || (state.policy.usesNamedPorts && !endpoint.namedPorts.isEmpty)
            if try removeEndpoint(endpoint, state: &state) {
                // Its identity is gone: endpoints whose rules selected it lose its entries.
                try regenerateAll(
                    &state, reason: "endpoint \(id) deleted", only: anyAffected || identity == nil ? nil : backendOf,
                    delta: identity.map {
                        PeerDelta(identities: [$0.id], endpoints: endpointsAffected(byPeers: [$0], in: state))
                    })
            } else if anyAffected || !backendOf.isEmpty {
                try regenerateAll(&state, reason: "endpoint \(id) deleted", only: anyAffected ? nil : backendOf)
            }
            try forgetEndpoint(id)
            refreshPolicyFiltersIfDue(&state)
            withdraw(endpoint, state)
            registry.broadcast(.endpointRemoved(id: id, addresses: endpoint.addresses.map(\.description)))
            logger.info("endpoint deleted", metadata: ["endpoint": "\(id)"])
            return endpointJSON(endpoint, state)
        }
    }

    /// Removes every trace of the endpoint from the datapath and releases its identity; true when that was the
    /// identity's last holder.
    @discardableResult
    func removeEndpoint(_ endpoint: Endpoint, state: inout AgentState) throws -> Bool {
        endpointDatapath.detachPrograms(ifindex: endpoint.ifindex)
        try endpointDatapath.removeEndpointInfo(ifindex: endpoint.ifindex)
        for address in endpoint.addresses { try ipcache.remove(address) }
        try retirePolicyMaps(endpoint.id, &state)
        if let realized = state.realized[endpoint.id] {
            policyFilters.withLock { $0.leftovers.add(withdrawn: PolicyMapLayout.exactKeys(realized.lazy.map(\.key))) }
        }
        state.realized[endpoint.id] = nil
        forgetHTTP(endpoint: endpoint.id, in: &state)
        state.endpoints[endpoint.id] = nil
        return try state.identities.release(endpoint.identity)
    }

    /// Adds and removes labels (or replaces them all); the identity follows.
    func patchLabels(id: UInt32, body: JSON) throws -> JSON {
        guard let object = body.objectValue else { throw AgentError.invalidField("body", "expected an object") }
        try KnownKeys.check(object.keys, known: ["add", "delete", "labels"], kind: "field")
        var claimed: [(field: String, labels: [Label])] = []
        func parse(_ field: String) throws -> LabelSet? {
            guard let value = object[field] else { return nil }
            let texts = try value.requireArray(field).enumerated().map { try $1.requireString("\(field)[\($0)]") }
            let set = try LabelSet(parsing: texts, field: field)
            claimed.append((field, try texts.enumerated().map { try Label(parsing: $1, field: "\(field)[\($0)]") }))
            return set
        }
        let replace = try parse("labels")
        let add = try parse("add")
        let delete = try parse("delete")
        guard let current = state.withLock({ $0.endpoints[id] }) else {
            throw AgentError.notFound("endpoint \(id) does not exist")
        }
        // Labels to set or add are checked as a PUT's are, so the error names the element of this body.
        for (field, labels) in claimed where field != "delete" {
            try EndpointLabels.check(labels, namespace: current.k8sNamespace, field: field)
        }
        var labels = replace ?? current.labels
        for label in delete?.labels ?? [] { labels = labels.removing(source: label.source, key: label.key) }
        for label in add?.labels ?? [] {
            labels = labels.removing(source: label.source, key: label.key).inserting(label)
        }
        guard labels.labels.count <= EndpointChangeRequest.maxLabels else {
            throw AgentError.invalidField(
                replace == nil ? "add" : "labels",
                "the endpoint would have \(labels.labels.count) labels, at most \(EndpointChangeRequest.maxLabels) "
                    + "allowed")
        }
        // The endpoint's JSON carries fields the agent derives (identity, state...); a change request must not.
        // The new labels go through the request's own parsing, which keeps the namespace label as on PUT.
        var fields = endpointJSON(current, nil).removingKeys(Self.derivedFields).objectValue ?? [:]
        fields["labels"] = .array(labels.strings.map { .string($0) })
        let request = try EndpointChangeRequest(json: .object(fields), id: id)
        return try putEndpoint(id: id, request: request).0
    }

    func endpointJSON(_ endpoint: Endpoint, _ state: AgentState?) -> JSON {
        endpoint.json(identityLabels: state?.identities.identity(id: endpoint.identity)?.labels)
    }

    /// Reads the node's addresses again when an endpoint is wired, at most once a second: wiring a pod can give the
    /// node an address (the gateway on the pod's host veth), which the node's traffic to pods comes from and which
    /// must be identity host for `allow-localhost`.
    ///
    /// Reading them is a dump of every interface, 50 ms with 2,000 links and about 350 ms with 20,000, which a
    /// create held the state's lock for once a second. The first time after a start the create still waits for it;
    /// after that it is read on a queue of its own while requests go on, and applied under the lock (a pod's
    /// address could already come up to a second late).
    func refreshHostAddressesIfDue(_ state: inout AgentState) {
        let (due, first) = hostAddressesRefreshed.withLock { last -> (Bool, Bool) in
            let now = ContinuousClock.now
            guard last.map({ now - $0 >= .seconds(1) }) ?? true else { return (false, false) }
            defer { last = now }
            return (true, last == nil)
        }
        guard due else { return }
        guard !first else {
            do {
                try refreshHostAddresses(&state)
            } catch {
                logger.warning("reading the node's addresses failed", metadata: ["error": "\(error)"])
            }
            return
        }
        Self.hostAddressReads.async { [self] in
            do {
                let addresses = try HostAddresses.current()
                try self.state.withLock { state in try useHostAddresses(addresses, &state) }
            } catch {
                logger.warning("reading the node's addresses failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One read at a time, so an older read is never applied after a newer one.
    private static let hostAddressReads = DispatchQueue(label: "nodeagent.host-addresses")

    /// Keeps the node's own addresses in the ipcache as identity host, so traffic from the node is not "world".
    func refreshHostAddresses(_ state: inout AgentState) throws {
        try useHostAddresses(try HostAddresses.current(), &state)
    }

    private func useHostAddresses(_ addresses: [IPAddress], _ state: inout AgentState) throws {
        let current = Set(addresses.filter { address in state.endpoints.endpoint(withAddress: address) == nil })
        for address in current.subtracting(state.hostAddresses) {
            try ipcache.set(address, identity: UInt32(NA_ID_HOST.rawValue))
        }
        for address in state.hostAddresses.subtracting(current) { try? ipcache.remove(address) }
        state.hostAddresses = current
    }
}
