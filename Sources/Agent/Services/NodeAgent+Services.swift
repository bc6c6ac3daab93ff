import AgentAPI

/// The service registry: create, replace, delete and list services, each change handed to the load balancer
/// (`serviceDatapath`) and saved before it is answered. Services live in `AgentState` under the state lock like
/// endpoints; a change the datapath refuses leaves the previous version in place everywhere (maps, state, disk).
extension NodeAgent {
    static let serviceIDs: ClosedRange<UInt32> = 1...65535

    /// Creates service `spec.id`, or replaces it. Returns it and whether it was created.
    func putService(_ spec: ServiceSpec) throws -> (service: Service, created: Bool) {
        let (service, previous) = try putServiceLocked(spec)
        if let previous {
            let kept = Set(spec.backends.map { AddressPort(address: $0.address, port: $0.port) })
            endConnections(
                to: previous.spec.backends.filter { !kept.contains(AddressPort(address: $0.address, port: $0.port)) },
                of: previous.spec)
        }
        return (service, previous == nil)
    }

    private func putServiceLocked(_ spec: ServiceSpec) throws -> (service: Service, previous: Service?) {
        try state.withLock { state in
            // The load balancer keys services on their frontend: two ids on one frontend would overwrite each other.
            if let holder = state.services.values.first(where: {
                $0.spec.id != spec.id && $0.spec.frontend == spec.frontend
            }) {
                throw AgentError.conflict(
                    "frontend \(spec.frontend) belongs to service \(holder.spec.id)", field: "frontend-address")
            }
            let previous = state.services[spec.id]
            let status = try program(spec, replacing: previous)
            let service = Service(spec: spec, status: status)
            do {
                try persistService(spec)
            } catch {
                restoreDatapath(after: spec, previous: previous)
                throw error
            }
            state.services[spec.id] = service
            do {
                try followBackends(of: [previous?.spec, spec], &state, reason: "service \(spec.id) changed")
            } catch {
                state.services[spec.id] = previous
                restoreDatapath(after: spec, previous: previous)
                if let previous { try? persistService(previous.spec) } else { try? forgetService(spec.id) }
                try? followBackends(of: [previous?.spec, spec], &state, reason: "service \(spec.id) change failed")
                throw error
            }
            logger.info(
                previous == nil ? "service created" : "service updated",
                metadata: [
                    "service": "\(spec.id)", "frontend": "\(spec.frontend)", "backends": "\(spec.backends.count)",
                    "realized": "\(status.realized)",
                ])
            return (service, previous)
        }
    }

    /// Removes service `id` from the datapath, the saved state and the registry; returns it as it was.
    func deleteService(id: UInt32) throws -> Service {
        let service = try deleteServiceLocked(id: id)
        endConnections(to: service.spec.backends, of: service.spec)
        return service
    }

    /// In the background, in the order of the changes: searching every namespace of the node walks the kernel's
    /// socket tables once per namespace, which took 20 to 400 ms on a loaded machine (bench/services.sh), and a
    /// service change answers in milliseconds. The maps no longer send new connections to these backends, so what
    /// connects meanwhile goes elsewhere; the old connections end moments later.
    private func endConnections(to backends: [ServiceBackend], of spec: ServiceSpec) {
        guard let serviceDatapath, !backends.isEmpty else { return }
        let logger = logger
        connectionTermination.async {
            let ended: Int
            do throws(AgentError) {
                ended = try serviceDatapath.terminateConnections(to: backends, of: spec.loadBalanced)
            } catch {
                logger.warning("\(error.message)", metadata: ["service": "\(spec.id)"])
                return
            }
            if ended > 0 {
                logger.info(
                    "ended connections to removed backends",
                    metadata: ["service": "\(spec.id)", "backends": "\(backends.count)", "sockets": "\(ended)"])
            }
        }
    }

    private func deleteServiceLocked(id: UInt32) throws -> Service {
        try state.withLock { state in
            guard let service = state.services[id] else { throw AgentError.notFound("service \(id) does not exist") }
            if let serviceDatapath {
                if service.status.realized {
                    try serviceDatapath.remove(service.spec.loadBalanced)
                } else {
                    // Not realized: the maps may hold part of a failed apply, or nothing at all.
                    try? serviceDatapath.remove(service.spec.loadBalanced)
                }
            }
            do {
                try forgetService(id)
            } catch {
                if service.status.realized { try? serviceDatapath?.apply(service.spec.loadBalanced) }
                throw error
            }
            state.services[id] = nil
            try followBackends(of: [service.spec], &state, reason: "service \(id) deleted")
            logger.info("service deleted", metadata: ["service": "\(id)", "frontend": "\(service.spec.frontend)"])
            return service
        }
    }

    /// Regenerates the endpoints whose rules name one of `specs` in `toServices` (their backends changed).
    private func followBackends(of specs: [ServiceSpec?], _ state: inout AgentState, reason: String) throws {
        let named = Set(specs.compactMap { $0?.policyReference })
        let affected = endpointsAffected(byServices: named, in: state)
        guard !affected.isEmpty else { return }
        try regenerateAll(&state, reason: reason, only: affected)
    }

    func service(id: UInt32) -> Service? {
        state.withLock { $0.services[id] }
    }

    /// Every service by id; only those on the filter's frontend when there is one.
    func services(matching filter: ServiceFrontendFilter?) -> [Service] {
        state.withLock { state in
            state.services.values.filter { filter?.matches($0.spec.frontend) ?? true }.sorted {
                $0.spec.id < $1.spec.id
            }
        }
    }

    /// Hands `spec` to the datapath and says what became of it. A refusal throws, after putting back what the
    /// datapath held before. A frontend change takes the old frontend out first: the reverse translation is keyed
    /// by the service id, which both versions share.
    func program(_ spec: ServiceSpec, replacing previous: Service?) throws(AgentError) -> ServiceStatus {
        guard let serviceDatapath else { return .noLoadBalancer }
        do {
            if let previous, previous.spec.frontend != spec.frontend {
                if previous.status.realized {
                    try serviceDatapath.remove(previous.spec.loadBalanced)
                } else {
                    try? serviceDatapath.remove(previous.spec.loadBalanced)
                }
            }
            try serviceDatapath.apply(spec.loadBalanced)
        } catch {
            restoreDatapath(after: spec, previous: previous)
            throw error
        }
        return .realizedNow
    }

    /// Best effort, after a failed change: the previous version applied again when it was realized, otherwise the
    /// new one taken out. Its own failure is logged; the change's error is what the client hears.
    private func restoreDatapath(after spec: ServiceSpec, previous: Service?) {
        guard let serviceDatapath else { return }
        do {
            if let previous, previous.status.realized {
                if previous.spec.frontend != spec.frontend { try? serviceDatapath.remove(spec.loadBalanced) }
                try serviceDatapath.apply(previous.spec.loadBalanced)
            } else {
                try serviceDatapath.remove(spec.loadBalanced)
            }
        } catch {
            logger.error(
                "putting back the service's previous datapath state failed",
                metadata: ["service": "\(spec.id)", "error": "\(error.message)"])
        }
    }
}
