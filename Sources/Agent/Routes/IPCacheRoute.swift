import DatapathCore
import Policy

/// `GET /v1/ipcache/{ip}`: the identity the datapath gives an address (the longest prefix `na_ipcache` holds for
/// it), its labels, and where the entry comes from: one of this node's endpoints, a pod of another node (cluster
/// mode), the node itself, or a CIDR prefix. What `cilium-dbg bpf ipcache get` answers.
struct IPCacheRoute {
    let agent: NodeAgent

    var routes: [Route] {
        [.get("/v1/ipcache/{ip}") { request in .json(try agent.ipcacheEntry(try request.pathParameter("ip"))) }]
    }
}

extension NodeAgent {
    func ipcacheEntry(_ text: String) throws -> JSON {
        guard let address = IPAddress(text) else {
            throw AgentError.invalidField("ip", "\"\(text)\" is not an IPv4 or IPv6 address")
        }
        let map: TypedMap<na_ipcache_key, na_ipcache_value> = try datapath.typedMap("na_ipcache")
        guard let value = try map.lookup(IPCache.key(address)) else {
            throw AgentError.notFound("no ipcache entry holds \(address): the datapath treats it as world")
        }
        let remote = cluster?.view.withLock { $0.remote[address] }
        return state.withLock { state in
            let labels = state.identities.identity(id: value.identity)?.labels.strings ?? []
            var object: [String: JSON] = [
                "address": .string(address.description), "identity": .int(Int64(value.identity)),
                "labels": .array(labels.map(JSON.string)),
            ]
            if let endpoint = state.endpoints.endpoint(withAddress: address) {
                object["source"] = "endpoint"
                object["endpoint"] = .int(Int64(endpoint.id))
                if let pod = endpoint.k8sPodName { object["pod"] = .string("\(endpoint.k8sNamespace ?? "")/\(pod)") }
            } else if let remote {
                object["source"] = "remote"
                object["node"] = .string(remote.node)
                if let pod = remote.pod { object["pod"] = .string("\(remote.namespace ?? "")/\(pod)") }
            } else if state.hostAddresses.contains(address) {
                object["source"] = "host"
            } else {
                object["source"] = "prefix"
            }
            return .object(object)
        }
    }
}
