import Foundation
import Glibc

/// An IPv4 or IPv6 socket address parsed from text.
struct SocketAddress: Sendable, CustomStringConvertible {
    private(set) var storage = sockaddr_storage()
    let family: Int32
    let length: socklen_t

    init(ip: String, port: UInt16) throws {
        if ip.contains(":") {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, ip, &address.sin6_addr) == 1 else {
                throw NetnsError("not an IPv6 address: \(ip)", errno: EINVAL)
            }
            family = AF_INET6
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_in6.self) }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            guard inet_pton(AF_INET, ip, &address.sin_addr) == 1 else {
                throw NetnsError("not an IPv4 address: \(ip)", errno: EINVAL)
            }
            family = AF_INET
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_in.self) }
        }
    }

    /// Wraps an address the kernel filled in (accept, recvfrom, getsockname).
    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
        family = Int32(storage.ss_family)
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: storage) { raw in
            try body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }

    /// The address without port; IPv4-mapped IPv6 addresses (dual-stack servers) are shown as IPv4.
    var ip: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        return withUnsafeBytes(of: storage) { raw -> String in
            if family == AF_INET {
                var address = raw.load(as: sockaddr_in.self).sin_addr
                inet_ntop(AF_INET, &address, &buffer, socklen_t(buffer.count))
            } else {
                var address = raw.load(as: sockaddr_in6.self).sin6_addr
                inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count))
            }
            let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return text.hasPrefix("::ffff:") && text.contains(".") ? String(text.dropFirst(7)) : text
        }
    }

    var port: UInt16 {
        withUnsafeBytes(of: storage) { raw in
            family == AF_INET
                ? UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
                : UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
        }
    }

    var description: String { family == AF_INET6 ? "[\(ip)]:\(port)" : "\(ip):\(port)" }
}

/// Socket calls for the traffic helpers: creation inside a namespace, and waiting with deadlines.
enum Sockets {
    /// Creates a non-blocking socket inside namespace `netns`; it stays in that namespace for its whole life,
    /// whatever thread later uses it.
    static func make(in netns: String, family: Int32, type: __socket_type) throws -> Int32 {
        let kind = Int32(type.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        return try Netns.perform(in: netns) {
            let fd = socket(family, kind, 0)
            guard fd >= 0 else { throw NetnsError("socket in \(netns)") }
            return fd
        }
    }

    /// A non-blocking dual-stack listener or datagram socket on [::]:port (IPv4 arrives as IPv4-mapped).
    static func bindAny(in netns: String, port: UInt16, type: __socket_type) throws -> Int32 {
        let fd = try make(in: netns, family: AF_INET6, type: type)
        do {
            try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 0)
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            let address = try SocketAddress(ip: "::", port: port)
            let rc = address.withSockaddr { bind(fd, $0, $1) }
            guard rc == 0 else { throw NetnsError("bind [::]:\(port) in \(netns)") }
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    /// accept(2) with the new socket non-blocking and close-on-exec (accept4 is GNU-only, not in Swift's Glibc).
    static func accept(_ listener: Int32) -> (fd: Int32, peer: SocketAddress)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutableBytes(of: &storage) {
            Glibc.accept(listener, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
        }
        guard fd >= 0 else { return nil }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return (fd, SocketAddress(storage: storage, length: length))
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) throws {
        var value = value
        guard setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw NetnsError("setsockopt(\(level), \(name))")
        }
    }

    /// Makes close() reset the connection instead of lingering in FIN_WAIT/TIME_WAIT: an orphaned socket keeps
    /// its namespace (and the veths inside) alive after the namespace is deleted.
    static func abortOnClose(_ fd: Int32) {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
    }

    /// Waits until `fd` has one of `events` or the deadline passes; returns the events seen (0 on timeout).
    static func wait(_ fd: Int32, for events: Int16, until deadline: Date) -> Int16 {
        while true {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { return 0 }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&entry, 1, Int32(min(remaining * 1000, 60_000).rounded(.up)))
            if rc > 0 { return entry.revents }
            if rc < 0 && errno != EINTR { return Int16(POLLERR) }
        }
    }

    /// The pending error of a socket (SO_ERROR), e.g. the result of a non-blocking connect.
    static func pendingError(_ fd: Int32) -> Int32 {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0 else { return errno }
        return code
    }

    static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutableBytes(of: &storage) {
            getsockname(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
        }
        return rc == 0 ? SocketAddress(storage: storage, length: length) : nil
    }
}
