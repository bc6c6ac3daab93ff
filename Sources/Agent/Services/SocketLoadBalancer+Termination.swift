import DatapathCore
import Glibc
import Netlink

/// Ending the connections of backends that left a service. A connected socket keeps the backend its connect
/// chose: a TCP connection to a deleted backend would otherwise live on (or hang) and a connected UDP socket would
/// send into the void forever, as no hook runs again for it. So after a change removed backends, every namespace
/// of the node is searched (sock_diag) for connected sockets the hooks sent to one of them through this service
/// (their cookie and backend are in `na_lb_revnat` under the service's id), and those are destroyed: their owners
/// read ECONNABORTED and connect again, through the service, to a backend that exists. Sockets that reached the
/// same address without the service, unconnected UDP sockets and backends that are only terminating are left alone.
extension SocketLoadBalancer {
    public func terminateConnections(to backends: [ServiceBackend], of service: LoadBalancedService) throws(AgentError)
        -> Int
    {
        let targets = Set(backends.map { AddressPort(address: $0.address, port: $0.port) })
        guard !targets.isEmpty else { return 0 }
        var destroyed = 0
        var refusal: AgentError?
        for path in NetworkNamespace.all() {
            // A namespace may go away while it is searched: the others are still searched.
            guard let diag = try? SocketDiag(namespace: path),
                let sockets = try? diag.connectedSockets(
                    proto: service.frontend.proto, family: service.frontend.address.family)
            else { continue }
            for socket in sockets where targets.contains(AddressPort(address: socket.remote, port: socket.remotePort)) {
                guard translated(socket, for: service.id) else { continue }
                do {
                    if try diag.destroy(socket) { destroyed += 1 }
                } catch let error as AgentError where error.errno == EOPNOTSUPP {
                    refusal = AgentError.unsupported(
                        "the kernel cannot destroy sockets (CONFIG_INET_DIAG_DESTROY): connections to removed "
                            + "backends of service \(service.frontend) stay open")
                } catch {
                    continue
                }
            }
        }
        if let refusal { throw refusal }
        return destroyed
    }

    /// Whether the hooks sent `socket` to its peer as a backend of service `id`.
    private func translated(_ socket: DiagSocket, for id: UInt32) -> Bool {
        var key = na_lb_revnat_key()
        key.cookie = socket.cookie
        key.family = socket.family.rawValue
        setTupleBytes(&key.addr, socket.remote.keyBytes)
        key.port = socket.remotePort.bigEndian
        return (try? revnat.lookup(key))??.service_id == id
    }
}
