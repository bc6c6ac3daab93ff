import CNetlink
import Glibc

/// An rtnetlink socket (libnl-route-3) bound to one network namespace: the namespace the thread was in when the
/// socket was created, which is how one process talks to the node's and the pod's namespaces without `nsenter`.
/// libnl's objects stay inside this file; callers see names, indexes and address strings.
final class NetlinkSocket {
    private let socket: OpaquePointer

    /// A socket in this thread's namespace, or in the namespace at `path` (/var/run/netns/x, /proc/<pid>/ns/net).
    init(namespace path: String? = nil) throws {
        guard let socket = nl_socket_alloc() else { throw CNIError(.ioFailure, "cannot allocate a netlink socket") }
        // Initialised from here on: a throw below runs deinit, which frees the socket.
        self.socket = socket
        guard let path else {
            try Self.check(nl_connect(socket, NETLINK_ROUTE), "connecting to rtnetlink")
            return
        }
        let target = open(path, O_RDONLY | O_CLOEXEC)
        guard target >= 0 else {
            let reason = String(cString: strerror(errno))
            throw CNIError(.ioFailure, "cannot open network namespace \(path)", details: reason)
        }
        defer { close(target) }
        let home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard home >= 0, cnl_setns_net(target) == 0 else {
            let reason = String(cString: strerror(errno))
            if home >= 0 { close(home) }
            throw CNIError(.ioFailure, "cannot enter network namespace \(path)", details: reason)
        }
        let connected = nl_connect(socket, NETLINK_ROUTE)
        // Back before anything else runs on this thread; the socket keeps the namespace it was created in.
        let returned = cnl_setns_net(home)
        close(home)
        guard returned == 0 else {
            throw CNIError(
                .ioFailure, "cannot return to the node's network namespace from \(path)",
                details: String(cString: strerror(errno)))
        }
        try Self.check(connected, "connecting to rtnetlink in \(path)")
    }

    deinit { nl_socket_free(socket) }

    struct Link {
        var index: Int32
        var name: String
        var mac: String
        var isUp: Bool
        var type: String?
    }

    struct Route: Equatable {
        /// `a.b.c.d/len`; `0.0.0.0/0` for the default route.
        var destination: String
        var gateway: String?
        var interfaceIndex: Int32?
    }

    // MARK: Links

    /// The link called `name`, nil when there is none.
    func link(named name: String) throws -> Link? {
        var link: OpaquePointer?
        let result = rtnl_link_get_kernel(socket, 0, name, &link)
        if result == -NLE_OBJ_NOTFOUND || result == -NLE_NODEV { return nil }
        try Self.check(result, "reading link \(name)")
        guard let link else { return nil }
        defer { rtnl_link_put(link) }
        return Self.describe(link)
    }

    func links() throws -> [Link] {
        var cache: OpaquePointer?
        try Self.check(rtnl_link_alloc_cache(socket, AF_UNSPEC, &cache), "listing links")
        defer { nl_cache_free(cache) }
        return Self.objects(in: cache).map(Self.describe)
    }

    /// A veth pair: `name` here, `peer` moved into the namespace of process `peerPID`.
    func addVeth(name: String, peer peerName: String, peerPID: pid_t, mtu: Int?) throws {
        guard let veth = rtnl_link_veth_alloc() else { throw CNIError(.ioFailure, "cannot allocate a veth") }
        defer { rtnl_link_put(veth) }
        let peer = rtnl_link_veth_get_peer(veth)
        rtnl_link_set_name(veth, name)
        rtnl_link_set_name(peer, peerName)
        rtnl_link_set_ns_pid(peer, peerPID)
        if let mtu {
            rtnl_link_set_mtu(veth, UInt32(mtu))
            rtnl_link_set_mtu(peer, UInt32(mtu))
        }
        rtnl_link_put(peer)
        try Self.check(
            rtnl_link_add(socket, veth, NLM_F_CREATE | NLM_F_EXCL), "creating veth \(name) with peer \(peerName)")
    }

    func setUp(_ name: String) throws {
        guard let current = try kernelLink(name) else { throw CNIError(.wiringFailed, "link \(name) is missing") }
        defer { rtnl_link_put(current) }
        guard let change = rtnl_link_alloc() else { throw CNIError(.ioFailure, "cannot allocate a link") }
        defer { rtnl_link_put(change) }
        rtnl_link_set_flags(change, cnl_iff_up())
        try Self.check(rtnl_link_change(socket, current, change, 0), "setting \(name) up")
    }

    /// Deletes the link called `name`; false when there was none.
    @discardableResult
    func deleteLink(_ name: String) throws -> Bool {
        guard let link = rtnl_link_alloc() else { throw CNIError(.ioFailure, "cannot allocate a link") }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        let result = rtnl_link_delete(socket, link)
        if result == -NLE_OBJ_NOTFOUND || result == -NLE_NODEV { return false }
        try Self.check(result, "deleting link \(name)")
        return true
    }

    // MARK: Addresses

    /// Adds `address/prefix` (IPv4) to the link with index `index`.
    func addAddress(_ address: String, prefix: Int, to index: Int32) throws {
        guard let object = rtnl_addr_alloc() else { throw CNIError(.ioFailure, "cannot allocate an address") }
        defer { rtnl_addr_put(object) }
        let local = try Self.parse("\(address)/\(prefix)")
        defer { nl_addr_put(local) }
        rtnl_addr_set_ifindex(object, index)
        try Self.check(rtnl_addr_set_local(object, local), "setting address \(address)")
        rtnl_addr_set_prefixlen(object, Int32(prefix))
        try Self.check(rtnl_addr_add(socket, object, 0), "adding \(address)/\(prefix) to interface \(index)")
    }

    /// The IPv4 addresses of the link with index `index`, as `a.b.c.d/len`.
    func addresses(of index: Int32) throws -> [String] {
        var cache: OpaquePointer?
        try Self.check(rtnl_addr_alloc_cache(socket, &cache), "listing addresses")
        defer { nl_cache_free(cache) }
        return Self.objects(in: cache).compactMap { object in
            guard rtnl_addr_get_ifindex(object) == index, rtnl_addr_get_family(object) == AF_INET,
                let local = rtnl_addr_get_local(object)
            else { return nil }
            return "\(Self.text(local))/\(rtnl_addr_get_prefixlen(object))"
        }
    }

    // MARK: Routes

    /// An IPv4 route in the main table to `destination` (`a.b.c.d/len`) out of `index`, through `gateway` when
    /// given (scope universe), else on-link (scope link). `replace` overwrites a route to the same destination.
    func addRoute(_ destination: String, gateway: String? = nil, via index: Int32, replace: Bool = false) throws {
        guard let route = rtnl_route_alloc(), let hop = rtnl_route_nh_alloc() else {
            throw CNIError(.ioFailure, "cannot allocate a route")
        }
        defer { rtnl_route_put(route) }
        let dst = try Self.parse(destination)
        defer { nl_addr_put(dst) }
        rtnl_route_set_family(route, UInt8(AF_INET))
        rtnl_route_set_table(route, UInt32(cnl_rt_table_main()))
        rtnl_route_set_protocol(route, UInt8(cnl_rtprot_boot()))
        rtnl_route_set_scope(route, UInt8(gateway == nil ? cnl_rt_scope_link() : cnl_rt_scope_universe()))
        try Self.check(rtnl_route_set_dst(route, dst), "setting route destination \(destination)")
        rtnl_route_nh_set_ifindex(hop, index)
        if let gateway {
            let address = try Self.parse(gateway)
            defer { nl_addr_put(address) }
            rtnl_route_nh_set_gateway(hop, address)
        }
        rtnl_route_add_nexthop(route, hop)  // the route owns the hop now
        let flags = replace ? NLM_F_REPLACE : NLM_F_EXCL
        try Self.check(rtnl_route_add(socket, route, flags), "adding route \(destination)")
    }

    /// The IPv4 routes of the main table.
    func routes() throws -> [Route] {
        var cache: OpaquePointer?
        try Self.check(rtnl_route_alloc_cache(socket, AF_INET, 0, &cache), "listing routes")
        defer { nl_cache_free(cache) }
        return Self.objects(in: cache).compactMap { route in
            guard rtnl_route_get_table(route) == UInt32(cnl_rt_table_main()), let dst = rtnl_route_get_dst(route)
            else { return nil }
            var result = Route(destination: "\(Self.text(dst))/\(nl_addr_get_prefixlen(dst))")
            if rtnl_route_get_nnexthops(route) > 0, let hop = rtnl_route_nexthop_n(route, 0) {
                result.interfaceIndex = rtnl_route_nh_get_ifindex(hop)
                result.gateway = rtnl_route_nh_get_gateway(hop).map(Self.text)
            }
            return result
        }
    }

    // MARK: libnl plumbing

    private func kernelLink(_ name: String) throws -> OpaquePointer? {
        var link: OpaquePointer?
        let result = rtnl_link_get_kernel(socket, 0, name, &link)
        if result == -NLE_OBJ_NOTFOUND || result == -NLE_NODEV { return nil }
        try Self.check(result, "reading link \(name)")
        return link
    }

    private static func describe(_ link: OpaquePointer) -> Link {
        let mac = rtnl_link_get_addr(link).map { address -> String in
            var buffer = [CChar](repeating: 0, count: 64)
            return String(cString: nl_addr2str(address, &buffer, buffer.count))
        }
        return Link(
            index: rtnl_link_get_ifindex(link), name: rtnl_link_get_name(link).map { String(cString: $0) } ?? "",
            mac: mac ?? "", isUp: rtnl_link_get_flags(link) & cnl_iff_up() != 0,
            type: rtnl_link_get_type(link).map { String(cString: $0) })
    }

    /// The objects of a cache; they belong to the cache and live as long as it does.
    private static func objects(in cache: OpaquePointer?) -> [OpaquePointer] {
        var result: [OpaquePointer] = []
        var object = nl_cache_get_first(cache)
        while let current = object {
            result.append(current)
            object = nl_cache_get_next(current)
        }
        return result
    }

    /// An IPv4 nl_addr from `a.b.c.d` or `a.b.c.d/len`; the caller puts it.
    private static func parse(_ text: String) throws -> OpaquePointer {
        var address: OpaquePointer?
        try check(nl_addr_parse(text, AF_INET, &address), "parsing address \(text)")
        guard let address else { throw CNIError(.ioFailure, "cannot parse address \(text)") }
        return address
    }

    /// The address part alone (`0.0.0.0` for an empty one, as the default route's destination is).
    private static func text(_ address: OpaquePointer) -> String {
        guard nl_addr_get_len(address) == 4, let bytes = nl_addr_get_binary_addr(address) else { return "0.0.0.0" }
        let octets = bytes.assumingMemoryBound(to: UInt8.self)
        return (0..<4).map { String(octets[$0]) }.joined(separator: ".")
    }

    /// libnl's chokepoint: a negative result is `-NLE_*`, turned into an error naming what was being done.
    private static func check(_ result: Int32, _ what: String) throws {
        guard result < 0 else { return }
        throw CNIError(.wiringFailed, "\(what) failed", details: String(cString: nl_geterror(result)))
    }
}
