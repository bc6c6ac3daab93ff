import AgentAPI
import DatapathCore
import FoundationEssentials
import Glibc

/// `GET /v1/cluster/nodes`: the nodes this agent knows, itself first. Like `cilium-dbg node list` it answers in
/// both modes: standalone, the list holds only this node and `cluster` is false, so a script need not tell the
/// modes apart to find the local node.
struct ClusterRoutes {
    let agent: NodeAgent

    var routes: [Route] {
        [.get("/v1/cluster/nodes") { _ in .json(agent.clusterNodes()) }]
    }
}

extension NodeAgent {
    /// `{"cluster": true, "self": "node1", "nodes": [{"name", "address", "pod-cidrs", "last-seen", "local"}]}`.
    func clusterNodes() -> JSON {
        let now = RFC3339.format(nanoseconds: Int64(Date().timeIntervalSince1970 * 1e9))
        guard let cluster else {
            var local: [String: JSON] = [
                "name": .string(Self.hostName), "pod-cidrs": .array(podCIDRs.map { .string($0.description) }),
                "last-seen": .string(now), "local": true,
            ]
            if let address = DefaultRoute.interfaceAddress() { local["address"] = .string(address.description) }
            return ["cluster": false, "self": .string(Self.hostName), "nodes": [.object(local)]]
        }
        var local = cluster.nodeEntry(podCIDRs: podCIDRs).objectValue ?? [:]
        local["last-seen"] = .string(now)
        local["local"] = true
        let others = cluster.view.withLock { $0.nodes }.values.sorted { $0.name < $1.name }.map { node -> JSON in
            var object = node.json.objectValue ?? [:]
            object["local"] = false
            return .object(object)
        }
        return ["cluster": true, "self": .string(cluster.nodeName), "nodes": .array([.object(local)] + others)]
    }

    /// The kernel's host name (uname), which is what a standalone node is called.
    static var hostName: String {
        var uts = utsname()
        uname(&uts)
        return withUnsafeBytes(of: uts.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
