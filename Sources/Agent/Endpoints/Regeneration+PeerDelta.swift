import Policy

/// Incremental policy updates: when peer identities appear or go away, an endpoint whose policy is otherwise
/// unchanged only gains or loses the entries keyed by those identities, so only those are computed (as Cilium does).
///
/// Why that is exact: the compiler gives every peer identity its entries from the items that select it, and
/// precedence (`PolicyCompiler.resolvePrecedence`) merges one identity's entries only with its own and with those
/// of identity 0 (any peer). An identity's entries therefore depend on itself, on identity 0's and on the rules
/// selecting the endpoint, never on which other identities exist. Resolving the endpoint against a universe of
/// just the changed identities gives their entries exactly as a full resolve would, as long as what peer selection
/// reads besides the identities (service backends, named ports, pod addresses) is the same full view.
extension NodeAgent {
    /// Endpoints whose policy can differ only in the entries of `identities`, which appeared or went away.
    struct PeerDelta {
        var identities: Set<UInt32>
        var endpoints: Set<UInt32>
    }

    /// The endpoint's policy after `changed` appeared or went away, computed from its realized map; nil when the
    /// full path must compute it.
    ///
    /// Falls back (nil) when:
    /// - the endpoint has no realized policy of the current revision, or none was ever written (generation 0):
    ///   there is nothing exact to start from;
    /// - enforcement would differ from what the endpoint has (another enforcement mode): enforcement is decided by
    ///   the rules selecting the endpoint, which a peer does not change, so a difference means something else
    ///   changed;
    /// - identity 0's entries differ from the realized ones: they depend on every named port known (egress named
    ///   ports of "any peer"), so a difference means more than the peers changed;
    /// - the endpoint has HTTP rules, now or in the L7 maps: a port's rule bits and peer masks are one structure
    ///   per port (`DesiredPolicy.http`), rebuilt whole by the full path.
    ///
    /// The callers give no delta where other inputs change with the peers (named ports, pod addresses an
    /// `ipBlock` selects, service backends): those endpoints take the full path.
    func policy(
        of endpoint: Endpoint, afterPeers changed: Set<UInt32>, in state: AgentState, peers: PolicyPeers
    ) -> DesiredPolicy? {
        guard let realized = state.realized[endpoint.id], endpoint.policyGeneration != 0,
            endpoint.policyRevision == state.policy.revision, state.realizedHTTP[endpoint.id] == nil
        else { return nil }
        let mode = runtime.withLock { $0.policyEnforcement }
        let labels = policyLabels(of: endpoint, in: state)
        let resolved = PolicyCompiler.resolve(
            rules: state.policy.rules(selecting: labels), endpoint: labels, peers: peers, mode: mode,
            namedPorts: endpoint.namedPorts)
        guard resolved.http.isEmpty, resolved.ingressEnforced == endpoint.enforceIngress,
            resolved.egressEnforced == endpoint.enforceEgress
        else { return nil }
        let before = realized.entries(of: changed)
        let anyPeerBefore = realized.entries(of: [0])
        let after = PolicyMapEntries(resolved.entries.lazy.filter { changed.contains($0.identity) }.map(\.mapped))
        let anyPeer = PolicyMapEntries(resolved.entries.lazy.filter { $0.identity == 0 }.map(\.mapped))
        guard anyPeer == anyPeerBefore else { return nil }
        let changes = PolicyMapEntries.diff(from: before, to: after)
        let gone = changes.remove.count
        let new = changes.upsert.count { before[$0.key] == nil }
        return DesiredPolicy(
            changes: changes, count: realized.count - gone + new,
            enforceIngress: resolved.ingressEnforced, enforceEgress: resolved.egressEnforced)
    }
}
