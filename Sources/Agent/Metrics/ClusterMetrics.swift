import Cluster
import DatapathCore
import EtcdClient
import FoundationEssentials

/// The cluster mode's part of `/v1/metrics`: etcd requests by kind and outcome, the session's writes, the
/// watches' failures and re-lists and how long ago each last heard from etcd, and what the node knows of the
/// others. Nothing when standalone.
extension NodeAgent {
    func clusterSamples() -> [MetricSample] {
        guard let cluster else { return [] }
        var samples: [MetricSample] = []
        let operations = cluster.client.operations.sorted {
            ($0.key.kind, $0.key.outcome) < ($1.key.kind, $1.key.outcome)
        }
        for (operation, count) in operations {
            samples.append(
                MetricSample(
                    name: "nodeagent_etcd_operations_total",
                    labels: ["kind": operation.kind, "outcome": operation.outcome], value: Double(count),
                    help: "Requests to etcd by kind (range, put, txn, grant, keepalive, ...) and outcome.",
                    type: "counter"))
        }
        let (writes, errors) = cluster.session.counters
        samples += [
            MetricSample(
                name: "nodeagent_cluster_session_writes_total", value: Double(writes),
                help: "Puts and deletes of this node's keys written to etcd.", type: "counter"),
            MetricSample(
                name: "nodeagent_cluster_session_errors_total", value: Double(errors),
                help: "Failed writes and lease renewals of this node's session.", type: "counter"),
            MetricSample(
                name: "nodeagent_cluster_session_in_sync", value: cluster.session.isInSync ? 1 : 0,
                help: "1 when every key this node owns is written under a live lease."),
        ]
        let now = Date()
        for mirror in cluster.mirrors.withLock({ $0 }) {
            let labels = ["prefix": watchName(mirror.prefix, cluster)]
            samples += [
                MetricSample(
                    name: "nodeagent_cluster_watch_failures_total", labels: labels, value: Double(mirror.failures),
                    help: "Lists and watches of a prefix that failed.", type: "counter"),
                MetricSample(
                    name: "nodeagent_cluster_watch_relists_total", labels: labels,
                    value: Double(max(mirror.lists - 1, 0)),
                    help: "Times a prefix was listed again after its watch broke.", type: "counter"),
                MetricSample(
                    name: "nodeagent_cluster_watch_synced", labels: labels, value: mirror.isSynced ? 1 : 0,
                    help: "1 while the prefix is listed and its watch runs."),
            ]
            if let lastSync = mirror.lastSync {
                samples.append(
                    MetricSample(
                        name: "nodeagent_cluster_last_sync_age_seconds", labels: labels,
                        value: now.timeIntervalSince(lastSync),
                        help: "Seconds since a prefix's list or watch last brought a change (the watch lag bound)."))
            }
        }
        let (remote, nodes) = cluster.view.withLock { ($0.remote.count, $0.nodes.count) }
        samples += [
            MetricSample(
                name: "nodeagent_cluster_remote_endpoints", value: Double(remote),
                help: "Pods of other nodes programmed into the ipcache."),
            MetricSample(
                name: "nodeagent_cluster_nodes", value: Double(nodes + 1), help: "Nodes known, this one included."),
        ]
        return samples
    }

    /// `identities`, `ipcache`, `nodes`: the prefix under the cluster's root, without its slashes.
    private func watchName(_ prefix: String, _ cluster: ClusterMode) -> String {
        let name = prefix.hasPrefix(cluster.keys.root) ? String(prefix.dropFirst(cluster.keys.root.count)) : prefix
        return name.split(separator: "/").joined(separator: "-")
    }
}
