import AgentAPI
import CNetlink
import Glibc

extension NetlinkSocket {
    public struct Link: Sendable {
        public var index: Int32
        public var name: String
        public var mac: String
        public var isUp: Bool
        /// The kind (`veth`, `dummy`, ...); nil for a plain device.
        public var type: String?
    }

    /// The link called `name`, nil when there is none.
    public func link(named name: String) throws -> Link? {
        guard let link = try kernelLink(name) else { return nil }
        defer { rtnl_link_put(link) }
        return Self.describe(link)
    }

    public func links() throws -> [Link] {
        var cache: OpaquePointer?
        try check(rtnl_link_alloc_cache(socket, AF_UNSPEC, &cache), "listing links")
        defer { nl_cache_free(cache) }
        return Self.objects(in: cache).map(Self.describe)
    }

    /// A veth pair: `name` here, `peer` moved into the namespace of process `peerPID`.
    public func addVeth(name: String, peer peerName: String, peerPID: pid_t, mtu: Int?) throws {
        guard let veth = rtnl_link_veth_alloc() else { throw AgentError.internal("cannot allocate a veth") }
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
        try check(
            rtnl_link_add(socket, veth, NLM_F_CREATE | NLM_F_EXCL), "creating veth \(name) with peer \(peerName)")
    }

    public func setUp(_ name: String) throws {
        guard let current = try kernelLink(name) else { throw AgentError.notFound("link \(name) is missing") }
        defer { rtnl_link_put(current) }
        guard let change = rtnl_link_alloc() else { throw AgentError.internal("cannot allocate a link") }
        defer { rtnl_link_put(change) }
        rtnl_link_set_flags(change, cnl_iff_up())
        try check(rtnl_link_change(socket, current, change, 0), "setting \(name) up")
    }

    /// Deletes the link called `name`; false when there was none.
    @discardableResult
    public func deleteLink(_ name: String) throws -> Bool {
        guard let link = rtnl_link_alloc() else { throw AgentError.internal("cannot allocate a link") }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        let result = try check(
            rtnl_link_delete(socket, link), "deleting link \(name)", tolerating: [NLE_OBJ_NOTFOUND, NLE_NODEV])
        return result >= 0
    }

    /// The kernel's object for link `name`, nil when there is none; the caller puts it.
    private func kernelLink(_ name: String) throws -> OpaquePointer? {
        var link: OpaquePointer?
        let result = try check(
            rtnl_link_get_kernel(socket, 0, name, &link), "reading link \(name)",
            tolerating: [NLE_OBJ_NOTFOUND, NLE_NODEV])
        return result < 0 ? nil : link
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
}
