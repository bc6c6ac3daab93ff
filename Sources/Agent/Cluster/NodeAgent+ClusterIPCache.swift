import AgentAPI
import Cluster
import DatapathCore
import EtcdClient
import Policy

/// Pod addresses in cluster mode: each node publishes its endpoints' addresses with their identity and its own
/// address under its lease, and programs the other nodes' into the ipcache, so policy decides a pod on another
/// node by its labels rather than as `world`.
extension NodeAgent {
    /// Publishes what `endpoint` holds after a change: its addresses, and this node's reference on its identity;
    /// withdraws what `previous` held that it no longer does. Publishing is asynchronous: the session writes it
    /// when etcd answers.
    func publish(_ endpoint: Endpoint, previous: Endpoint?, _ state: AgentState) {
        guard let cluster else { return }
        let entry = RemoteEndpoint(
            identity: endpoint.identity, node: cluster.nodeName, nodeAddress: cluster.nodeAddress,
            namespace: endpoint.k8sNamespace, pod: endpoint.k8sPodName)
        for address in endpoint.addresses { cluster.session.own(cluster.keys.ipcache(address), entry.json) }
        if ClusterIdentities.range.contains(endpoint.identity),
            let identity = state.identities.identity(id: endpoint.identity)
        {
            // Written only while the identity holds these labels: a released number is never referenced again.
            cluster.session.own(
                cluster.keys.identityReference(identity.id, node: cluster.nodeName), [],
                onlyIf: ClusterIdentityGC.referenceCondition(identity, keys: cluster.keys))
        }
        if let previous { withdraw(previous, keeping: endpoint, state) }
    }

    /// Withdraws what `endpoint` published: its addresses (those `keeping` does not hold) and the node's
    /// reference on its identity once no endpoint of the node holds it.
    func withdraw(_ endpoint: Endpoint, keeping: Endpoint? = nil, _ state: AgentState) {
        guard let cluster else { return }
        for address in endpoint.addresses where !(keeping?.addresses.contains(address) ?? false) {
            cluster.session.disown(cluster.keys.ipcache(address))
        }
        if ClusterIdentities.range.contains(endpoint.identity), state.identities.references(endpoint.identity) == 0 {
            cluster.session.disown(cluster.keys.identityReference(endpoint.identity, node: cluster.nodeName))
        }
    }

    /// Applies the cluster's ipcache (a list, or one change of the watch): other nodes' pods go into the ipcache
    /// map with their identity. This node's own entries are skipped, and so is an address a local endpoint holds
    /// (a stale entry of a pod that moved here).
    func applyClusterIPCache(_ change: PrefixMirror.Change) {
        guard let cluster else { return }
        state.withLock { state in
            var remote = cluster.view.withLock { $0.remote }
            let before = remote
            func entry(_ kv: EtcdKeyValue) -> (IPAddress, RemoteEndpoint)? {
                guard let address = cluster.keys.ipcacheAddress(inKey: kv.key),
                    let json = try? JSON.parse(kv.value), let entry = RemoteEndpoint(json: json),
                    entry.node != cluster.nodeName
                else { return nil }
                return (address, entry)
            }
            // Only what the change names is compared: a watch event touches one address, not the whole copy.
            var touched: [IPAddress] = []
            switch change {
            case .snapshot(let kvs, _):
                remote = [:]
                for kv in kvs { if let (address, value) = entry(kv) { remote[address] = value } }
                touched = Array(Set(remote.keys).union(before.keys))
            case .put(let kv):
                if let (address, value) = entry(kv) {
                    remote[address] = value
                    touched = [address]
                } else if let address = cluster.keys.ipcacheAddress(inKey: kv.key) {
                    remote[address] = nil  // now this node's
                    touched = [address]
                }
            case .delete(let key):
                if let address = cluster.keys.ipcacheAddress(inKey: key) {
                    remote[address] = nil
                    touched = [address]
                }
            }
            let changed = touched.filter { remote[$0] != before[$0] }
            guard !changed.isEmpty else { return }
            do {
                let mine = changed.filter { state.endpoints.endpoint(withAddress: $0) == nil }
                for address in mine where remote[address] == nil { try ipcache.remove(address) }
                cluster.view.withLock { $0.remote = remote }
                // A service backend that became or stopped being a remote pod is selected differently by
                // toServices (by the pod's identity, or as a host prefix): between the removals and the new
                // entries, so a host prefix the regeneration takes or gives back never overwrites a pod's entry.
                let following = endpointsAffected(byBackendAddresses: changed, in: state)
                if !following.isEmpty {
                    try regenerateAll(&state, reason: "service backends on other nodes changed", only: following)
                }
                for address in mine {
                    if let value = remote[address] { try ipcache.set(address, identity: value.identity) }
                }
                try persistClusterCache(state)
            } catch {
                logger.error("programming other nodes' pods into the ipcache failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
