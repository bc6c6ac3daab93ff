import AgentAPI
import Cluster
import EtcdClient
import FoundationEssentials
import Logging

/// Joining the cluster once the API serves: the session writes this node's entries, and four watches keep the
/// node in step with the cluster's identities, pod addresses, nodes and policy.
extension NodeAgent {
    func startCluster() {
        guard let cluster else { return }
        cluster.session.own(cluster.keys.node(cluster.nodeName), cluster.nodeEntry(podCIDRs: podCIDRs))
        state.withLock { state in
            for endpoint in state.endpoints.values { publish(endpoint, previous: nil, state) }
        }
        startIdentityCollector()
        keepClusterLease(cluster)
        cluster.session.start()
        let logger = cluster.logger
        let mirrors = [
            PrefixMirror(client: cluster.client, prefix: cluster.keys.identityNumbers, logger: logger) { [weak self] in
                self?.applyClusterIdentities($0)
            },
            PrefixMirror(client: cluster.client, prefix: cluster.keys.ipcache, logger: logger) { [weak self] in
                self?.applyClusterIPCache($0)
            },
            PrefixMirror(client: cluster.client, prefix: cluster.keys.nodes, logger: logger) { [weak self] in
                self?.applyClusterNodes($0)
            },
            PrefixMirror(
                client: cluster.client, prefix: cluster.keys.policies, logger: logger,
                batchHandler: { [weak self] in self?.applyClusterPolicies($0, revision: $1) }),
        ]
        cluster.mirrors.withLock { $0 = mirrors }
        for mirror in mirrors { mirror.start() }
        // Routes to the nodes known before the restart, until the watch has the current list.
        syncNodeRoutes(cluster.view.withLock { $0.nodes })
        logger.info(
            "joining the cluster",
            metadata: [
                "cluster": "\(cluster.config.name)", "node": "\(cluster.nodeName)",
                "node-address": "\(cluster.nodeAddress)",
                "etcd": "\(cluster.config.etcd.endpoints.joined(separator: ","))",
            ])
    }

    /// The `cluster` part of `/v1/healthz`: etcd's members as each endpoint answers, whether this node's entries
    /// are written and its watches current, and the nodes it knows.
    func clusterHealth() -> JSON? {
        guard let cluster else { return nil }
        // A second per member, asked at once: a hung member must not hold up the health check (nor a probe of it).
        let members = cluster.client.health(timeout: .seconds(1)).map { health -> JSON in
            var object: [String: JSON] = ["endpoint": .string(health.endpoint), "healthy": .bool(health.isHealthy)]
            if let error = health.error { object["error"] = .string(error) }
            if let status = health.status {
                object["version"] = .string(status.version)
                object["revision"] = .int(status.revision)
            }
            return .object(object)
        }
        let reachable = members.contains { $0["healthy"]?.boolValue == true }
        let mirrors = cluster.mirrors.withLock { $0 }
        let synced = !mirrors.isEmpty && mirrors.allSatisfy(\.isSynced)
        let lastSync = mirrors.compactMap(\.lastSync).min()
        let (writes, errors) = cluster.session.counters
        var etcd: [String: JSON] = [
            "endpoints": .array(cluster.config.etcd.endpoints.map(JSON.string)), "members": .array(members),
            "state": .string(reachable ? "reachable" : "unreachable"),
        ]
        if let lease = cluster.session.lease { etcd["lease"] = .int(lease) }
        if let error = cluster.session.lastError ?? mirrors.compactMap(\.lastError).first {
            etcd["last-error"] = .string(error)
        }
        var object: [String: JSON] = [
            "name": .string(cluster.config.name), "node": .string(cluster.nodeName),
            "node-address": .string(cluster.nodeAddress.description), "etcd": .object(etcd),
            "synced": .bool(synced && cluster.session.isInSync),
            "nodes": .int(Int64(cluster.view.withLock { $0.nodes.count } + 1)),
            "remote-endpoints": .int(Int64(cluster.view.withLock { $0.remote.count })),
            "owned-keys": .int(Int64(cluster.session.ownedCount)), "writes": .int(Int64(writes)),
            "errors": .int(Int64(errors)),
        ]
        if let lastSync {
            object["last-sync"] = .string(RFC3339.format(nanoseconds: Int64(lastSync.timeIntervalSince1970 * 1e9)))
        }
        return .object(object)
    }
}
