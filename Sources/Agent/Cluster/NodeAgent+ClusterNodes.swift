import AgentAPI
import Cluster
import DatapathCore
import EtcdClient
import FoundationEssentials

/// Nodes in cluster mode: each node registers itself (name, address, pod CIDRs) under its lease; every node keeps
/// a route to each other node's pod CIDRs through that node's address (native routing), and drops the routes of
/// a node whose entry is gone (its lease expired: the node was away for longer than the TTL).
extension NodeAgent {
    /// This node's pod CIDRs, as the IPAM plugin has them.
    var podCIDRs: [IPPrefix] {
        registry.enabled.lazy.compactMap { $0 as? any PodCIDRProvider }.first?.podCIDRs ?? []
    }

    func applyClusterNodes(_ change: PrefixMirror.Change) {
        guard let cluster else { return }
        let now = Date()
        func node(_ kv: EtcdKeyValue) -> ClusterNode? {
            guard let name = cluster.keys.nodeName(inKey: kv.key), name != cluster.nodeName,
                let json = try? JSON.parse(kv.value), let node = ClusterNode(json: json, seen: now), node.name == name
            else { return nil }
            return node
        }
        let (before, after) = cluster.view.withLock { view -> ([String: ClusterNode], [String: ClusterNode]) in
            let before = view.nodes
            switch change {
            case .snapshot(let kvs, _):
                view.nodes = [:]
                for kv in kvs { if let node = node(kv) { view.nodes[node.name] = node } }
            case .put(let kv):
                if let node = node(kv) { view.nodes[node.name] = node }
            case .delete(let key):
                if let name = cluster.keys.nodeName(inKey: key) { view.nodes[name] = nil }
            }
            return (before, view.nodes)
        }
        for name in after.keys.sorted() where before[name] == nil {
            cluster.logger.info("node joined", metadata: ["node": "\(name)", "address": "\(after[name]!.address)"])
        }
        for name in before.keys.sorted() where after[name] == nil {
            cluster.logger.info("node left", metadata: ["node": "\(name)"])
        }
        syncNodeRoutes(after)
        state.withLock { state in
            do { try persistClusterCache(state) } catch {
                logger.warning("saving the cluster view failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Makes the node's routes to other nodes' pod CIDRs match `nodes`: adds or replaces each, removes the agent's
    /// routes to prefixes no node has any more.
    func syncNodeRoutes(_ nodes: [String: ClusterNode]) {
        guard let cluster else { return }
        var wanted: [IPPrefix: IPAddress] = [:]
        for node in nodes.values {
            for prefix in node.podCIDRs where prefix.address.family == node.address.family {
                wanted[prefix] = node.address
            }
        }
        do {
            try cluster.routes.sync(wanted)
        } catch {
            cluster.logger.error("programming routes to other nodes failed", metadata: ["error": "\(error)"])
        }
    }
}
