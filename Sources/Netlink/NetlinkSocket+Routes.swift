import AgentAPI
import CNetlink
import Glibc

/// Routes of the main table, IPv4 and IPv6. Destinations are prefixes (`10.1.0.0/24`, `fd00:1::/64`), gateways
/// addresses; the family follows the text.
extension NetlinkSocket {
    public struct Route: Equatable, Sendable {
        /// `address/len`, canonical; `0.0.0.0/0` or `::/0` for a default route.
        public var destination: String
        public var gateway: String?
        /// The interface of the (first) next hop: the one given, or the one the kernel resolved the gateway to.
        public var interfaceIndex: Int32?

        public init(destination: String, gateway: String? = nil, interfaceIndex: Int32? = nil) {
            self.destination = destination
            self.gateway = gateway
            self.interfaceIndex = interfaceIndex
        }
    }

    /// A route to `destination` out of `index`, through `gateway` when given (scope universe), else on-link
    /// (scope link), marked `proto boot` as `ip route` marks its own. `replace` overwrites a route to the same
    /// destination.
    public func addRoute(_ destination: String, gateway: String? = nil, via index: Int32, replace: Bool = false)
        throws
    {
        let scope = gateway == nil ? cnl_rt_scope_link() : cnl_rt_scope_universe()
        let route = try makeRoute(destination, protocol: .boot, scope: scope)
        defer { rtnl_route_put(route) }
        try addNextHop(to: route, gateway: gateway, index: index)
        let flags = replace ? NLM_F_REPLACE : NLM_F_EXCL
        try check(rtnl_route_add(socket, route, flags), "adding route \(destination)")
    }

    /// Installs the route to `destination` through `gateway`, replacing the main table's route to the same
    /// destination if there is one, whoever installed it (`ip route replace`: NLM_F_CREATE | NLM_F_REPLACE).
    /// The kernel picks the interface: the gateway must be on-link, reachable through a link route of this
    /// namespace. The route is marked `protocol`.
    public func replaceRoute(_ destination: String, gateway: String, protocol: RouteProtocol) throws {
        guard NetlinkAddress.family(of: destination) == NetlinkAddress.family(of: gateway) else {
            throw AgentError.invalidField(
                "gateway", "\(gateway) is not of the same address family as the destination \(destination)")
        }
        let route = try makeRoute(destination, protocol: `protocol`, scope: cnl_rt_scope_universe())
        defer { rtnl_route_put(route) }
        try addNextHop(to: route, gateway: gateway, index: nil)
        try check(
            rtnl_route_add(socket, route, NLM_F_REPLACE),
            "replacing route \(destination) via \(gateway) (proto \(`protocol`))")
    }

    /// Deletes the main table's route to `destination` marked `protocol`, leaving a route to the same destination
    /// installed by anyone else in place. False when there was none.
    @discardableResult
    public func deleteRoute(_ destination: String, protocol: RouteProtocol) throws -> Bool {
        // Scope universe (0) matches a route of any scope: the kernel compares the scope only when it is set.
        let route = try makeRoute(destination, protocol: `protocol`, scope: cnl_rt_scope_universe())
        defer { rtnl_route_put(route) }
        let result = try check(
            rtnl_route_delete(socket, route, 0), "deleting route \(destination) (proto \(`protocol`))",
            tolerating: [NLE_OBJ_NOTFOUND])
        return result >= 0
    }

    /// The routes of the main table, IPv4 and IPv6; only those marked `protocol` when it is given.
    public func routes(protocol: RouteProtocol? = nil) throws -> [Route] {
        var cache: OpaquePointer?
        try check(rtnl_route_alloc_cache(socket, AF_UNSPEC, 0, &cache), "listing routes")
        defer { nl_cache_free(cache) }
        return Self.objects(in: cache).compactMap { route in
            let family = Int32(rtnl_route_get_family(route))
            guard family == AF_INET || family == AF_INET6, rtnl_route_get_table(route) == UInt32(cnl_rt_table_main()),
                `protocol` == nil || rtnl_route_get_protocol(route) == `protocol`?.rawValue,
                let dst = rtnl_route_get_dst(route)
            else { return nil }
            var result = Route(destination: NetlinkAddress.prefix(dst, family: family))
            if rtnl_route_get_nnexthops(route) > 0, let hop = rtnl_route_nexthop_n(route, 0) {
                result.interfaceIndex = rtnl_route_nh_get_ifindex(hop)
                result.gateway = rtnl_route_nh_get_gateway(hop).map { NetlinkAddress.text($0, family: family) }
            }
            return result
        }
    }

    /// A route of the main table to `destination`, without next hops; the caller puts it.
    private func makeRoute(_ destination: String, protocol: RouteProtocol, scope: Int32) throws -> OpaquePointer {
        let dst = try NetlinkAddress.parse(destination, field: "destination")
        defer { nl_addr_put(dst) }
        guard let route = rtnl_route_alloc() else { throw AgentError.internal("cannot allocate a route") }
        rtnl_route_set_family(route, UInt8(NetlinkAddress.family(of: destination)))
        rtnl_route_set_table(route, UInt32(cnl_rt_table_main()))
        rtnl_route_set_protocol(route, `protocol`.rawValue)
        rtnl_route_set_scope(route, UInt8(scope))
        do {
            try check(rtnl_route_set_dst(route, dst), "setting route destination \(destination)")
        } catch {
            rtnl_route_put(route)
            throw error
        }
        return route
    }

    /// The route's one next hop: through `gateway` when given, out of `index` when given (else the kernel picks).
    private func addNextHop(to route: OpaquePointer, gateway: String?, index: Int32?) throws {
        let address = try gateway.map { try NetlinkAddress.parse($0, field: "gateway") }
        defer { address.map(nl_addr_put) }
        guard let hop = rtnl_route_nh_alloc() else { throw AgentError.internal("cannot allocate a next hop") }
        if let index { rtnl_route_nh_set_ifindex(hop, index) }
        if let address { rtnl_route_nh_set_gateway(hop, address) }
        rtnl_route_add_nexthop(route, hop)  // the route owns the hop now
    }
}
