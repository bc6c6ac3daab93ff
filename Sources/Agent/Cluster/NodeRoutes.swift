import AgentAPI
import Netlink

/// The routes to other nodes' pod CIDRs in the agent's network namespace (native routing): `<pod CIDR> via <node
/// address>`, marked with the agent's route protocol so that the agent finds and removes its own, also after a
/// restart, and never touches anyone else's.
struct NodeRoutes {
    /// Makes the agent's routes exactly `wanted` (pod CIDR → the node address it is reached through).
    func sync(_ wanted: [IPPrefix: IPAddress]) throws {
        let socket = try NetlinkSocket()
        let current = try socket.routes(protocol: .nodeagent)
        var installed: [IPPrefix: IPAddress?] = [:]
        for route in current {
            guard let prefix = IPPrefix(route.destination) else { continue }
            installed[prefix] = route.gateway.flatMap(IPAddress.init)
        }
        for (prefix, gateway) in wanted.sorted(by: { $0.key.description < $1.key.description })
        where installed[prefix] != .some(gateway) {
            try socket.replaceRoute(prefix.description, gateway: gateway.description, protocol: .nodeagent)
        }
        for route in current {
            guard let prefix = IPPrefix(route.destination), wanted[prefix] == nil else { continue }
            try socket.deleteRoute(route.destination, protocol: .nodeagent)
        }
    }
}
