import AgentAPI
import Cluster
import Policy

/// Releasing identities in cluster mode: every node collects identities no node references (`ClusterIdentityGC`),
/// and a node whose reference is refused because its identity was released meanwhile (etcd or the node away for
/// longer than the lease, then the grace period) restores the number for its labels.
extension NodeAgent {
    func startIdentityCollector() {
        guard let cluster else { return }
        cluster.session.onRefused { [weak self] key in self?.referenceRefused(key) }
        cluster.collector.start(
            ClusterIdentityGC(client: cluster.client, keys: cluster.keys, grace: cluster.config.identityGCGrace),
            logger: cluster.logger)
    }

    /// The session's conditional write of this node's reference on an identity failed: the identity is gone, or its
    /// number names other labels. While an endpoint of the node still holds it, the number is created again for
    /// its labels (when still free) and the reference written; when another label set took the number, the
    /// endpoints keep enforcing with it locally until they are re-created, and the conflict is logged.
    func referenceRefused(_ key: String) {
        guard let cluster, let id = cluster.keys.identityNumber(inReferenceKey: key) else { return }
        let identity = state.withLock { state -> Identity? in
            state.identities.references(id) > 0 ? state.identities.identity(id: id) : nil
        }
        guard let identity else { return }
        do {
            if try cluster.identities.restore(identity) {
                cluster.logger.warning(
                    "cluster identity was released while in use; restored",
                    metadata: ["identity": "\(id)", "labels": "\(identity.labels)"])
                cluster.session.retry(key)
            } else {
                cluster.logger.error(
                    "released cluster identity in use, its number now other labels'; re-create its endpoints",
                    metadata: ["identity": "\(id)", "labels": "\(identity.labels)"])
            }
        } catch {
            cluster.logger.warning(
                "restoring a released identity failed; trying again",
                metadata: ["identity": "\(id)", "error": "\(error.message)"])
            cluster.session.retry(key)
        }
    }
}
