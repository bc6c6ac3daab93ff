import AgentAPI
import CNetlink
import Glibc

/// An rtnetlink socket (libnl-route-3) bound to one network namespace: the namespace the thread was in when the
/// socket was created, which is how one process talks to the node's and a pod's namespaces without `nsenter`.
/// libnl's objects stay inside this module; callers see names, indexes and address strings.
///
/// Not safe to share between threads (libnl sockets are not): open one where it is used, they are cheap.
public final class NetlinkSocket {
    let socket: OpaquePointer
    /// Where the error callback records the kernel's errno and extended ack message of the last refusal.
    private let refusal: UnsafeMutablePointer<cnl_kernel_error>

    /// A socket in this thread's namespace, or in the namespace at `path` (/var/run/netns/x, /proc/<pid>/ns/net).
    public init(namespace path: String? = nil) throws {
        guard let socket = nl_socket_alloc() else { throw AgentError.internal("cannot allocate a netlink socket") }
        self.socket = socket
        refusal = .allocate(capacity: 1)
        refusal.initialize(to: cnl_kernel_error())
        // Initialised from here on: a throw below runs deinit, which frees the socket.
        guard let path else {
            try check(nl_connect(socket, NETLINK_ROUTE), "connecting to rtnetlink")
            try check(cnl_record_errors(socket, refusal), "installing the netlink error handler")
            return
        }
        // The socket keeps the namespace it was created in.
        let connected = try NetworkNamespace.run(in: path) { nl_connect(socket, NETLINK_ROUTE) }
        try check(connected, "connecting to rtnetlink in \(path)")
        try check(cnl_record_errors(socket, refusal), "installing the netlink error handler")
    }

    deinit {
        nl_socket_free(socket)
        refusal.deallocate()
    }

    /// The chokepoint for libnl calls: `result` is 0 or more, or `-NLE_*`, turned into an error naming `what` and
    /// libnl's message, with the kernel's errno and extended ack message when the kernel refused the request.
    /// `tolerating` lists `NLE_*` codes the caller handles itself: they come back instead of being thrown.
    /// Every call on this socket goes through here, which clears the recorded refusal for the next one.
    @discardableResult
    func check(_ result: Int32, _ what: @autoclosure () -> String, tolerating: Set<Int32> = []) throws -> Int32 {
        let errno = refusal.pointee.error
        let message = withUnsafeBytes(of: refusal.pointee.message) {
            String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
        }
        refusal.pointee = cnl_kernel_error()
        guard result < 0, !tolerating.contains(-result) else { return result }
        let reason = String(cString: nl_geterror(result))
        guard errno > 0 else { throw AgentError.datapath("\(what()): \(reason)") }
        // libnl names the errnos it knows better than strerror does (ESRCH is "Object not found", not "No such
        // process"); the others it calls "Unspecific failure", where only the errno says what happened.
        var details = -result == NLE_FAILURE ? String(cString: strerror(errno)) : reason
        if !message.isEmpty { details += " (\(message))" }
        throw AgentError.kernel("\(what()): \(details)", errno: errno)
    }

}

extension NetlinkSocket {
    /// The objects of a cache; they belong to the cache and live as long as it does.
    static func objects(in cache: OpaquePointer?) -> [OpaquePointer] {
        var result: [OpaquePointer] = []
        var object = nl_cache_get_first(cache)
        while let current = object {
            result.append(current)
            object = nl_cache_get_next(current)
        }
        return result
    }
}
