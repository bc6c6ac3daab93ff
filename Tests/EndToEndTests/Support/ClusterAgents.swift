import AgentAPI
import Foundation

/// Agents in cluster mode, one per node of a `ClusterTopology`, all pointed at one etcd cluster.
extension EndToEndTestCase {
    /// Starts an agent on every node with a `cluster` section naming the node, its underlay address and the etcd
    /// members, and the node's pod CIDR for IPAM (which the node publishes and the others route).
    func startClusterAgents(
        on cluster: ClusterTopology, etcd: EtcdCluster, leaseTTL: String = "5s", nodes: [Int]? = nil,
        ipam: JSON? = nil, options: [String: JSON] = [:]
    ) throws -> [AgentProcess] {
        try (nodes ?? Array(cluster.nodes.indices)).map { index in
            try startClusterAgent(cluster.nodes[index], etcd: etcd, leaseTTL: leaseTTL, ipam: ipam, options: options)
        }
    }

    /// `ipam`: the IPAM plugin's options, by default the node's pod CIDR of the harness; `options`: more of the
    /// `cluster` section.
    func startClusterAgent(
        _ node: Topology, etcd: EtcdCluster, leaseTTL: String = "5s", ipam: JSON? = nil, options: [String: JSON] = [:]
    ) throws -> AgentProcess {
        guard let port = node.underlay else { throw AgentHarnessError("\(node.nodeName) is not on an underlay") }
        var section: [String: JSON] = [
            "name": .string("na\(node.tag)"), "node-name": .string(node.nodeName), "node-address": .string(port.ipv4),
            "etcd": ["endpoints": JSON(etcd.clientEndpoints), "lease-ttl": .string(leaseTTL)],
        ]
        section.merge(options) { _, given in given }
        let config: JSON = [
            "cluster": .object(section),
            "plugins": ["ipam": ipam ?? ["pod-cidr-ipv4": .string(node.addressing.ipv4CIDR)]],
        ]
        let path = "\(Topology.temporaryDirectory)/na\(node.tag)-\(node.nodeName)-config.json"
        try Data(config.serialized().utf8).write(to: URL(fileURLWithPath: path))
        node.run.onDestroy { try? FileManager.default.removeItem(atPath: path) }
        return try startAgent(in: node, configFile: path)
    }
}

extension AgentProcess {
    /// The `cluster` part of `/v1/healthz`.
    func clusterHealth() throws -> JSON {
        let health = try api(.GET, "/v1/healthz")
        guard health.status == 200, let cluster = health.json?["cluster"] else {
            throw AgentHarnessError("GET /v1/healthz has no cluster part: \(health)")
        }
        return cluster
    }

    /// Waits until the agent knows `count` pods of other nodes (its ipcache holds them).
    func waitForRemoteEndpoints(_ count: Int, timeout: TimeInterval = 10) throws {
        let deadline = Date() + timeout
        var last: JSON = .null
        repeat {
            last = try clusterHealth()
            if last["remote-endpoints"]?.intValue == Int64(count) { return }
            Thread.sleep(forTimeInterval: 0.05)
        } while Date() < deadline
        throw AgentHarnessError(
            "agent knows \(last["remote-endpoints"]?.intValue ?? -1) remote endpoints, not \(count): \(last)")
    }
}
