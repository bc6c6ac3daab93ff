import DatapathCore
import Policy

/// The policy table's filters (`na_ptable_ports`, `na_ptable_peers`) kept exact while the agent runs.
///
/// A withdrawn full-length key leaves its port's and its (port, peer) pair's bits set: the datapath only needs
/// them to cover every current key. Left alone, a port whose peers come and go for days fills its line of the peer
/// filter, and new flows of peers its policy refuses read the policy table again. The agent notes what each
/// withdrawal leaves (`PolicyFilterLeftovers`) and clears it at the end of a change, at most once per `interval`:
/// a refresh visits every endpoint's realized entries. Kept outside `AgentState`, whose copies (a change's
/// rollback point) would otherwise copy its buffers.
struct PolicyFilterUpkeep: Sendable {
    var leftovers = PolicyFilterLeftovers()
    var lastRefresh: ContinuousClock.Instant?
    var interval: Duration = .seconds(1)
}

extension NodeAgent {
    /// Clears the leftovers no current key needs, once `interval` has passed since the last refresh. Called under
    /// the state lock at the end of the changes that withdraw keys, so no other write of the keys runs meanwhile.
    /// A failure is logged and the leftovers forgotten: bits left set cost new flows a table read, never a verdict.
    func refreshPolicyFiltersIfDue(_ state: inout AgentState) {
        let realized = state.realized
        policyFilters.withLock { upkeep in
            guard !upkeep.leftovers.isEmpty else { return }
            let now = ContinuousClock.now
            if let last = upkeep.lastRefresh, now - last < upkeep.interval { return }
            upkeep.lastRefresh = now
            do {
                let written = try endpointDatapath.policyTable.refreshFilters(&upkeep.leftovers) { visit in
                    for entries in realized.values {
                        for entry in entries where PolicyMapLayout.isExact(entry.key) {
                            visit(PolicyMapLayout.key(entry.key))
                        }
                    }
                }
                logger.debug(
                    "policy filters refreshed",
                    metadata: [
                        "port-words": "\(written.portWords)", "peer-words": "\(written.peerWords)",
                        "duration": "\(ContinuousClock.now - now)",
                    ])
            } catch {
                logger.warning("refreshing the policy filters failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
