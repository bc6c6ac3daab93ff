import AgentAPI
import CNetlink
import Glibc

/// A connected TCP or UDP socket as sock_diag reports it: enough to name it and to destroy exactly it.
public struct DiagSocket: Sendable, Hashable {
    public var family: IPAddress.Family
    public var proto: UInt8
    public var local: IPAddress
    public var localPort: UInt16
    public var remote: IPAddress
    public var remotePort: UInt16
    /// The kernel's socket cookie (`bpf_get_socket_cookie` gives the same number).
    public var cookie: UInt64
    /// The sock_diag id, as the kernel wants it back to find the socket.
    let id: inet_diag_sockid

    public static func == (a: DiagSocket, b: DiagSocket) -> Bool { a.cookie == b.cookie && a.proto == b.proto }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(cookie)
        hasher.combine(proto)
    }
}

/// sock_diag (NETLINK_SOCK_DIAG) in one network namespace: lists its connected TCP and UDP sockets and destroys
/// chosen ones (`SOCK_DESTROY`, Linux 4.5 with CONFIG_INET_DIAG_DESTROY): the owner of a destroyed TCP socket
/// reads ECONNABORTED and its peer gets a reset; a UDP socket's owner reads ECONNABORTED on its next call.
/// Raw netlink: libnl has no sock_diag API. Not safe to share between threads.
public final class SocketDiag {
    private let fd: Int32
    private var sequence: UInt32 = 0

    /// A socket in this thread's namespace, or in the namespace at `path`.
    public init(namespace path: String? = nil) throws {
        let open = {
            Glibc.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_SOCK_DIAG)
        }
        fd = try path.map { try NetworkNamespace.run(in: $0, open) } ?? open()
        guard fd >= 0 else { throw NetworkNamespace.systemError("opening a sock_diag socket") }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// TCP sockets past the handshake's start and not yet closed (no listeners, no TIME_WAIT); UDP sockets that
    /// are connected (a connected UDP socket is in state ESTABLISHED).
    static func states(proto: UInt8) -> UInt32 {
        guard proto == UInt8(IPPROTO_TCP) else { return 1 << 1 }
        // ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING
        return [1, 2, 3, 4, 5, 8, 9, 11].reduce(0) { $0 | (1 << $1) }
    }

    /// The namespace's connected sockets of `proto` (TCP or UDP) and `family`.
    public func connectedSockets(proto: UInt8, family: IPAddress.Family) throws -> [DiagSocket] {
        var request = inet_diag_req_v2()
        request.sdiag_family = family.rawValue
        request.sdiag_protocol = proto
        request.idiag_states = Self.states(proto: proto)
        let seq = try send(type: UInt16(SOCK_DIAG_BY_FAMILY), flags: Int32(NLM_F_REQUEST | NLM_F_DUMP), request)
        var sockets: [DiagSocket] = []
        try receive(seq: seq) { type, payload in
            guard type == UInt16(SOCK_DIAG_BY_FAMILY), payload.count >= MemoryLayout<inet_diag_msg>.size else {
                return
            }
            let message = payload.withUnsafeBytes { $0.loadUnaligned(as: inet_diag_msg.self) }
            sockets.append(Self.socket(message, proto: proto))
        }
        return sockets
    }

    /// Destroys `socket`; false when it was already gone.
    @discardableResult
    public func destroy(_ socket: DiagSocket) throws -> Bool {
        var request = inet_diag_req_v2()
        request.sdiag_family = socket.family.rawValue
        request.sdiag_protocol = socket.proto
        request.idiag_states = UInt32.max
        request.id = socket.id
        let seq = try send(type: UInt16(SOCK_DESTROY), flags: Int32(NLM_F_REQUEST | NLM_F_ACK), request)
        var gone = false
        do {
            try receive(seq: seq) { _, _ in }
        } catch let error as AgentError where error.errno == ENOENT {
            gone = true
        }
        return !gone
    }

    private static func socket(_ message: inet_diag_msg, proto: UInt8) -> DiagSocket {
        let family: IPAddress.Family = message.idiag_family == UInt8(AF_INET6) ? .ipv6 : .ipv4
        let id = message.id
        func address(_ words: (UInt32, UInt32, UInt32, UInt32)) -> IPAddress {
            IPAddress(family: family, bytes: withUnsafeBytes(of: words) { Array($0) })
        }
        let cookie = UInt64(id.idiag_cookie.0) | UInt64(id.idiag_cookie.1) << 32
        return DiagSocket(
            family: family, proto: proto, local: address(id.idiag_src), localPort: UInt16(bigEndian: id.idiag_sport),
            remote: address(id.idiag_dst), remotePort: UInt16(bigEndian: id.idiag_dport), cookie: cookie, id: id)
    }

    private func send(type: UInt16, flags: Int32, _ request: inet_diag_req_v2) throws -> UInt32 {
        sequence &+= 1
        var header = nlmsghdr()
        let length = MemoryLayout<nlmsghdr>.size + MemoryLayout<inet_diag_req_v2>.size
        header.nlmsg_len = UInt32(length)
        header.nlmsg_type = type
        header.nlmsg_flags = UInt16(flags)
        header.nlmsg_seq = sequence
        var bytes = withUnsafeBytes(of: header) { Array($0) }
        withUnsafeBytes(of: request) { bytes.append(contentsOf: $0) }
        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        let sent = withUnsafePointer(to: &kernel) { address in
            address.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
            }
        }
        guard sent == bytes.count else { throw NetworkNamespace.systemError("sending a sock_diag request") }
        return sequence
    }

    /// Reads the answers to request `seq` until NLMSG_DONE or an acknowledgement; an error answer throws with its
    /// errno. `each` gets every other message's type and payload.
    private func receive(seq: UInt32, _ each: (UInt16, ArraySlice<UInt8>) -> Void) throws {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let headerSize = MemoryLayout<nlmsghdr>.size
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw NetworkNamespace.systemError("reading sock_diag answers") }
            var offset = 0
            while offset + headerSize <= count {
                let header = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: nlmsghdr.self) }
                let length = Int(header.nlmsg_len)
                guard length >= headerSize, offset + length <= count else { break }
                defer { offset += (length + 3) & ~3 }
                guard header.nlmsg_seq == seq else { continue }
                switch Int32(header.nlmsg_type) {
                case NLMSG_DONE:
                    return
                case NLMSG_ERROR:
                    let code = buffer.withUnsafeBytes {
                        $0.loadUnaligned(fromByteOffset: offset + headerSize, as: Int32.self)
                    }
                    guard code != 0 else { return }  // the acknowledgement
                    throw AgentError.kernel("sock_diag: \(String(cString: strerror(-code)))", errno: -code)
                default:
                    each(header.nlmsg_type, buffer[(offset + headerSize)..<(offset + length)])
                }
            }
        }
    }
}
