import AgentAPI
import CNetlink
import Glibc

extension NetlinkSocket {
    /// Adds `address/prefix` (IPv4 or IPv6) to the link with index `index`.
    public func addAddress(_ address: String, prefix: Int, to index: Int32) throws {
        guard let object = rtnl_addr_alloc() else { throw AgentError.internal("cannot allocate an address") }
        defer { rtnl_addr_put(object) }
        let local = try NetlinkAddress.parse("\(address)/\(prefix)", field: "address")
        defer { nl_addr_put(local) }
        rtnl_addr_set_ifindex(object, index)
        try check(rtnl_addr_set_local(object, local), "setting address \(address)")
        rtnl_addr_set_prefixlen(object, Int32(prefix))
        try check(rtnl_addr_add(socket, object, 0), "adding \(address)/\(prefix) to interface \(index)")
    }

    /// Every IPv4 and IPv6 address of the namespace's links, from one address dump (RTM_GETADDR): no link is
    /// listed, so a node with thousands of pod interfaces and a few addresses costs a few addresses (getifaddrs
    /// lists every link with its statistics as well, megabytes for 2,000 links).
    public func allAddresses() throws -> [IPAddress] {
        try addressDump { _, family, local in
            NetlinkAddress.bytes(local, family: family).map {
                IPAddress(family: family == AF_INET ? .ipv4 : .ipv6, bytes: Array($0))
            }
        }
    }

    /// The addresses of the link with index `index`, IPv4 and IPv6, as `address/len`.
    public func addresses(of index: Int32) throws -> [String] {
        try addressDump { object, family, local in
            guard rtnl_addr_get_ifindex(object) == index else { return nil }
            return "\(NetlinkAddress.text(local, family: family))/\(rtnl_addr_get_prefixlen(object))"
        }
    }

    /// `each` of the namespace's IPv4 and IPv6 addresses (the address object, its family and its local address),
    /// from one address dump; nil results are left out.
    private func addressDump<T>(_ each: (OpaquePointer, Int32, OpaquePointer) -> T?) throws -> [T] {
        var cache: OpaquePointer?
        try check(rtnl_addr_alloc_cache(socket, &cache), "listing addresses")
        defer { nl_cache_free(cache) }
        return Self.objects(in: cache).compactMap { object in
            let family = rtnl_addr_get_family(object)
            guard family == AF_INET || family == AF_INET6, let local = rtnl_addr_get_local(object) else { return nil }
            return each(object, family, local)
        }
    }
}
