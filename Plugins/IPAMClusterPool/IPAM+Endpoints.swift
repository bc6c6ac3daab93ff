import DatapathCore

/// Endpoints and their addresses: claims when endpoints appear, orphans when they are gone.
extension IPAM {
    /// Allocations whose endpoint is gone: bound to an endpoint once, and no live endpoint uses the address now.
    /// Released unless `dryRun`. Allocations no endpoint ever claimed are the allocating client's to release
    /// (or expire, when made with `expiration: true`).
    func collectGarbage(dryRun: Bool) throws(AgentError) -> [Allocation] {
        try state.withLock { (state: inout State) throws(AgentError) in
            try requireReady(state)
            let orphans = state.table.allocations.filter {
                $0.endpoint != nil && state.liveAddresses[$0.address] == nil
            }
            if !dryRun, !orphans.isEmpty {
                try commit(LedgerChange(release: orphans.map(\.address)), &state)
            }
            return orphans
        }
    }

    // MARK: Endpoint events

    /// Endpoint created or updated: its addresses are claimed for it (allocated if nobody had, bound to it,
    /// expiration cancelled). Endpoint removed: its addresses stay allocated for their owner to release, or for
    /// garbage collection.
    func handle(_ event: DatapathEvent) {
        state.withLock { state in
            switch state.phase {
            case .starting: state.pendingEvents.append(event)
            case .ready: apply(event, &state)
            default: break
            }
        }
    }

    func apply(_ event: DatapathEvent, _ state: inout State) {
        switch event {
        case .endpointAdded(let id, _, let texts):
            let addresses = texts.compactMap(IPAddress.init)
            forget(endpoint: id, &state)
            state.liveEndpoints[id] = addresses
            for address in addresses { state.liveAddresses[address] = id }
            var change = LedgerChange()
            claimChange(endpoint: id, addresses: addresses, state: state, into: &change)
            guard !change.isEmpty else { return }
            do throws(AgentError) {
                try commit(change, &state)
            } catch {
                // The addresses stay protected as live ones; the next start re-claims them from the datapath.
                warn("recording the addresses of endpoint \(id) in the IPAM ledger failed: \(error.message)")
            }
        case .endpointRemoved(let id, _):
            forget(endpoint: id, &state)
        }
    }

    fileprivate func forget(endpoint id: UInt32, _ state: inout State) {
        for address in state.liveEndpoints.removeValue(forKey: id) ?? [] where state.liveAddresses[address] == id {
            state.liveAddresses[address] = nil
        }
    }

    /// What claiming `addresses` for endpoint `id` changes: existing allocations are bound to it and stop
    /// expiring; free addresses in the pod CIDR become allocations of the endpoint.
    func claimChange(endpoint id: UInt32, addresses: [IPAddress], state: State, into change: inout LedgerChange) {
        for address in addresses {
            if var existing = state.table[address] {
                guard existing.endpoint != id || existing.expiresAtMs != nil else { continue }
                existing.endpoint = id
                existing.expiresAtMs = nil
                existing.expirationUUID = nil
                change.put.append(existing)
                continue
            }
            guard let cidr = config.family(address.family)?.podCIDR, let offset = cidr.offset(of: address) else {
                continue  // not from this node's pool
            }
            if let reservation = cidr.reservation(at: offset) {
                warn("endpoint \(id) uses \(address), \(reservation) of pod CIDR \(cidr)")
                continue
            }
            change.put.append(Allocation(address: address, owner: nil, endpoint: id, allocatedAtMs: clock()))
        }
    }
}
