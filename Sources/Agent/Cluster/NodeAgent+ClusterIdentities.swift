import AgentAPI
import Cluster
import EtcdClient
import Policy

/// Identities in cluster mode: numbers come from etcd, every node learns every identity of the cluster, and a
/// node holds a reference (a key under its lease) on each identity its endpoints use.
extension NodeAgent {
    /// Makes sure `labels` have a number before an endpoint acquires them: a label set new to the cluster is
    /// allocated in etcd (503 naming etcd when it cannot be reached; nothing is applied then). Known label sets,
    /// and every standalone agent, need nothing.
    ///
    /// The allocation is what the store holds now, so it wins over this node's mirror like a list does: the store
    /// may have released a number and given it to these labels before the watch delivered the release here. The
    /// identities it replaces are returned: endpoints whose rules selected them must lose their entries.
    func prepareIdentity(for labels: LabelSet, _ state: inout AgentState) throws -> [Identity] {
        guard let cluster else { return [] }
        let filtered = state.identities.filter.apply(labels)
        if state.identities.identity(labels: filtered) != nil { return [] }
        let identity = try cluster.identities.allocate(filtered)
        let (_, replaced) = try learnFromStore(identity, cluster, &state)
        cluster.logger.info(
            "cluster identity allocated", metadata: ["identity": "\(identity.id)", "labels": "\(filtered)"])
        return replaced
    }

    /// `IdentityAllocator.learnFromStore`, logging each identity the store's answer replaced here: released and
    /// numbered again before this node saw the release (its watch was behind, lost, or the node was away).
    private func learnFromStore(_ identity: Identity, _ cluster: ClusterMode, _ state: inout AgentState)
        throws(AgentError) -> (learned: Bool, replaced: [Identity])
    {
        let result = try state.identities.learnFromStore(identity)
        for gone in result.replaced {
            cluster.logger.info(
                "cluster identity replaced: released and numbered again before this node saw the release",
                metadata: [
                    "identity": "\(gone.id)", "labels": "\(gone.labels)", "now": "\(identity.id) \(identity.labels)",
                ])
        }
        return result
    }

    /// Applies the cluster's identities (a list, or one change of the watch) and regenerates the endpoints whose
    /// rules select one that appeared or went away.
    func applyClusterIdentities(_ change: PrefixMirror.Change) {
        guard let cluster else { return }
        state.withLock { state in
            var changed: [Identity] = []
            func learn(_ kv: EtcdKeyValue) {
                guard let identity = cluster.identities.decode(kv) else {
                    cluster.logger.warning("ignoring a malformed identity entry", metadata: ["key": "\(kv.key)"])
                    return
                }
                do {
                    let (learned, replaced) = try learnFromStore(identity, cluster, &state)
                    changed += replaced
                    if learned { changed.append(identity) }
                } catch {
                    cluster.logger.error(
                        "cluster identity conflicts with this node's", metadata: ["error": "\(error.message)"])
                }
            }
            switch change {
            case .snapshot(let kvs, _):
                var listed: Set<UInt32> = []
                for kv in kvs {
                    learn(kv)
                    if let id = cluster.keys.identityNumber(inKey: kv.key) { listed.insert(id) }
                }
                for identity in state.identities.learnedIdentities where !listed.contains(identity.id) {
                    if let gone = state.identities.forget(identity.id) { changed.append(gone) }
                }
            case .put(let kv):
                learn(kv)
            case .delete(let key):
                if let id = cluster.keys.identityNumber(inKey: key), let gone = state.identities.forget(id) {
                    changed.append(gone)
                }
            }
            guard !changed.isEmpty else { return }
            do {
                // Other nodes' identities change nothing but their own entries (named ports and pod addresses are
                // read from local endpoints only; remote service backends follow the ipcache, not this).
                try regenerateAll(
                    &state, reason: "cluster identities changed", only: [],
                    delta: PeerDelta(
                        identities: Set(changed.map(\.id)), endpoints: endpointsAffected(byPeers: changed, in: state)))
                try persistClusterCache(state)
            } catch {
                logger.error("regeneration after a cluster identity change failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
