import AgentAPI
import Policy

/// `toServices`: a service named in a policy stands for its backends, resolved by address whenever policy is
/// computed. A backend that is one of this node's endpoints, or a pod of another node (cluster mode), is selected
/// by that pod's identity, the one the datapath sees once the load balancer has sent a connection there. Any other
/// backend address is selected as `toCIDR` of its /32 or /128 would be (what Cilium does for services without a
/// selector), which needs the cidr-policy plugin; without it such backends are not allowed (never widened).
/// Every backend counts whatever its state: a terminating backend's established connections stay allowed.
extension NodeAgent {
    struct ServicePeers {
        /// Identities of endpoints and remote pods among each service's backends.
        var identities: [ServiceReference: Set<UInt32>] = [:]
        /// Backends no pod holds, as host prefixes.
        var prefixes: [ServiceReference: Set<IPPrefix>] = [:]

        var allPrefixes: Set<IPPrefix> { prefixes.values.reduce(into: []) { $0.formUnion($1) } }

        /// Peers per service, prefixes replaced by the identities `prefixIDs` gives them (missing ones select nothing).
        func resolved(prefixIDs: [IPPrefix: UInt32]) -> [ServiceReference: [UInt32]] {
            var result: [ServiceReference: [UInt32]] = [:]
            for reference in Set(identities.keys).union(prefixes.keys) {
                var ids = identities[reference] ?? []
                for prefix in prefixes[reference] ?? [] { if let id = prefixIDs[prefix] { ids.insert(id) } }
                result[reference] = ids.sorted()
            }
            return result
        }
    }

    /// The backends of every service the policies name (by `flags.name` and `flags.namespace`; services sharing
    /// both, such as a DNS service's UDP and TCP frontends, are one peer).
    func servicePeers(in state: AgentState) -> ServicePeers {
        let wanted = state.policy.serviceReferences
        guard !wanted.isEmpty else { return ServicePeers() }
        let remote = cluster?.view.withLock { $0.remote } ?? [:]
        var peers = ServicePeers()
        for service in state.services.values {
            guard let reference = service.spec.policyReference, wanted.contains(reference) else { continue }
            for backend in service.spec.backends {
                if let endpoint = state.endpoints.endpoint(withAddress: backend.address) {
                    peers.identities[reference, default: []].insert(endpoint.identity)
                } else if let pod = remote[backend.address] {
                    peers.identities[reference, default: []].insert(pod.identity)
                } else {
                    let prefix = IPPrefix(address: backend.address, length: backend.address.bitLength)
                    peers.prefixes[reference, default: []].insert(prefix)
                }
            }
        }
        return peers
    }

    /// The endpoints whose policy follows the backends of `services`: those selected by a rule naming one.
    func endpointsAffected(byServices services: Set<ServiceReference>, in state: AgentState) -> Set<UInt32> {
        endpoints(selectedBy: state.policy.rules(namingServices: services), in: state)
    }

    /// The endpoints whose policy can change when an endpoint with `addresses` appears or goes away: it may be a
    /// backend of a service some rule names.
    func endpointsAffected(byBackendAddresses addresses: [IPAddress], in state: AgentState) -> Set<UInt32> {
        let wanted = state.policy.serviceReferences
        guard !wanted.isEmpty, !addresses.isEmpty else { return [] }
        let named = state.services.values.compactMap { service -> ServiceReference? in
            guard let reference = service.spec.policyReference, wanted.contains(reference),
                service.spec.backends.contains(where: { addresses.contains($0.address) })
            else { return nil }
            return reference
        }
        return endpointsAffected(byServices: Set(named), in: state)
    }
}

extension ServiceSpec {
    /// How a policy's `toServices` names this service; nil without both a name and a namespace.
    var policyReference: ServiceReference? {
        guard let name, let namespace else { return nil }
        return ServiceReference(name: name, namespace: namespace)
    }
}
