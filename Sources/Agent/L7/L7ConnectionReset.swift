import AgentAPI
import Glibc
import Netlink

/// Connections accepted before their port had HTTP rules were never enrolled by the sockops program (it enrolls
/// sockets as they are accepted), so their requests would go on unchecked. When a port of an endpoint gains HTTP
/// rules, its established server sockets are found in every network namespace (sock_diag) and destroyed: the
/// client sees a reset and connects again, and the new connection is enrolled.
enum L7ConnectionReset {
    /// Destroys the established TCP sockets bound to one of `addresses` and one of `ports`; returns how many.
    /// Throws when the kernel cannot destroy sockets (CONFIG_INET_DIAG_DESTROY), naming what stays open.
    static func reset(addresses: [IPAddress], ports: Set<UInt16>) throws(AgentError) -> Int {
        guard !addresses.isEmpty, !ports.isEmpty else { return 0 }
        let locals = Set(addresses)
        var destroyed = 0
        var refusal: AgentError?
        for path in NetworkNamespace.all() {
            guard let diag = try? SocketDiag(namespace: path) else { continue }
            for family in Set(addresses.map(\.family)) {
                // A namespace may go away while it is searched: the others are still searched.
                guard let sockets = try? diag.connectedSockets(proto: UInt8(IPPROTO_TCP), family: family) else {
                    continue
                }
                for socket in sockets where locals.contains(socket.local) && ports.contains(socket.localPort) {
                    do {
                        if try diag.destroy(socket) { destroyed += 1 }
                    } catch let error as AgentError where error.errno == EOPNOTSUPP {
                        refusal = AgentError.unsupported(
                            "the kernel cannot destroy sockets (CONFIG_INET_DIAG_DESTROY): connections accepted on "
                                + "ports \(ports.sorted()) before their HTTP rules stay open")
                    } catch {
                        continue
                    }
                }
            }
        }
        if let refusal { throw refusal }
        return destroyed
    }

    /// One TCP connection as the server sees it.
    struct Connection: Hashable, Sendable {
        var local: IPAddress
        var localPort: UInt16
        var remote: IPAddress
        var remotePort: UInt16
    }

    /// Destroys the server sockets of `connections` wherever they are; a dual-stack server's socket shows IPv4
    /// peers as IPv4-mapped IPv6 addresses, which match too. Returns how many were destroyed.
    static func reset(_ connections: Set<Connection>) -> Int {
        guard !connections.isEmpty else { return 0 }
        var destroyed = 0
        for path in NetworkNamespace.all() {
            guard let diag = try? SocketDiag(namespace: path) else { continue }
            for family in [IPAddress.Family.ipv4, .ipv6] {
                guard let sockets = try? diag.connectedSockets(proto: UInt8(IPPROTO_TCP), family: family) else {
                    continue
                }
                for socket in sockets {
                    let seen = Connection(
                        local: unmapped(socket.local), localPort: socket.localPort, remote: unmapped(socket.remote),
                        remotePort: socket.remotePort)
                    guard connections.contains(seen) else { continue }
                    if (try? diag.destroy(socket)) == true { destroyed += 1 }
                }
            }
        }
        return destroyed
    }

    /// `::ffff:a.b.c.d` as `a.b.c.d`; any other address as it is.
    static func unmapped(_ address: IPAddress) -> IPAddress {
        guard address.family == .ipv6, address.bytes[0..<10].allSatisfy({ $0 == 0 }), address.bytes[10] == 0xff,
            address.bytes[11] == 0xff
        else { return address }
        return IPAddress(family: .ipv4, bytes: Array(address.bytes[12..<16]))
    }
}
