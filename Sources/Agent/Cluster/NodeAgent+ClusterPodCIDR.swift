import AgentAPI
import Cluster
import DatapathCore
import Logging

/// The node's pod CIDR in cluster mode: when `plugins.ipam` has a cluster pool and neither `node-index` nor
/// `pod-cidr-<family>`, the node claims the first free subnet of the pool in etcd (`PodCIDRClaims`) before the
/// plugin is configured, and hands it to the plugin as its `pod-cidr-<family>`. The claim is kept in the state
/// directory: a restart while etcd is out of reach uses it, a restart with etcd claims it again (its being another
/// node's fails the start), and etcd out of reach with no claim yet fails the start naming etcd.
extension NodeAgent {
    static let podCIDRDocument = "cluster-pod-cidrs"

    static func claimingPodCIDRs(
        _ plugins: JSON, cluster: ClusterMode?, store: StateStore, logger: Logger
    ) throws -> JSON {
        guard let cluster, var ipam = plugins["ipam"]?.objectValue, ipam["enabled"]?.boolValue != false,
            ipam["node-index"] == nil
        else { return plugins }
        var saved = (try store.read(podCIDRDocument))?.objectValue ?? [:]
        if saved["cluster"]?.stringValue != cluster.config.name { saved = [:] }
        var claimed = false
        for family in ["ipv4", "ipv6"] {
            guard let value = ipam["cluster-pool-\(family)-cidr"], ipam["pod-cidr-\(family)"] == nil else { continue }
            let pools = (value.arrayValue ?? [value]).compactMap { $0.stringValue.flatMap(IPPrefix.init) }
            let maskSize =
                ipam["cluster-pool-\(family)-mask-size"]?.intValue.flatMap { Int(exactly: $0) }
                ?? (family == "ipv4" ? 24 : 120)
            // A malformed pool is the plugin's to report, naming its field.
            guard !pools.isEmpty, pools.allSatisfy({ $0.length <= maskSize }) else { continue }
            let previous = saved[family]?.stringValue.flatMap(IPPrefix.init).flatMap { prefix in
                prefix.length == maskSize && pools.contains { $0.contains(prefix) } ? prefix : nil
            }
            let claims = PodCIDRClaims(client: cluster.client, keys: cluster.keys)
            let prefix = try claimOrReuse(
                family, previous: previous, logger: logger,
                try claims.claim(node: cluster.nodeName, pools: pools, maskSize: maskSize, previous: previous))
            ipam["pod-cidr-\(family)"] = .string(prefix.description)
            saved[family] = .string(prefix.description)
            claimed = true
            logger.info("pod CIDR from the cluster pool", metadata: ["pod-cidr": "\(prefix)"])
        }
        guard claimed else { return plugins }
        saved["cluster"] = .string(cluster.config.name)
        try store.write(podCIDRDocument, .object(saved))
        var object = plugins.objectValue ?? [:]
        object["ipam"] = .object(ipam)
        return .object(object)
    }

    /// The claim's answer, or the CIDR claimed before when etcd is out of reach; a 503 naming etcd when there is
    /// none.
    private static func claimOrReuse(
        _ family: String, previous: IPPrefix?, logger: Logger, _ claim: @autoclosure () throws(AgentError) -> IPPrefix
    ) throws(AgentError) -> IPPrefix {
        let error: AgentError
        do {
            return try claim()
        } catch let failure {
            error = failure
        }
        guard error.status == 503 else { throw error }
        guard let previous else {
            throw AgentError.unavailable(
                "cannot claim this node's pod CIDR from plugins.ipam.cluster-pool-\(family)-cidr: \(error.message); "
                    + "no CIDR was claimed before (set node-index or pod-cidr-\(family) to start without etcd)")
        }
        logger.warning(
            "etcd out of reach; using the pod CIDR this node claimed before",
            metadata: ["pod-cidr": "\(previous)", "error": "\(error.message)"])
        return previous
    }
}
