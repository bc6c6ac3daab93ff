import AgentAPI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A listening TCP socket on one IPv4 or IPv6 address (4 or 16 bytes, network order) and port.
enum TCPListener {
    /// Binds (SO_REUSEADDR, so a restart does not wait out TIME_WAIT) and listens; the socket is handed to the
    /// HTTP daemon, which closes it when it stops.
    static func open(address: [UInt8], port: UInt16, backlog: Int32 = 64) throws(AgentError) -> Int32 {
        guard address.count == 4 || address.count == 16 else {
            throw .invalidField("address", "expected 4 or 16 address bytes, got \(address.count)")
        }
        let family = address.count == 4 ? AF_INET : AF_INET6
        let fd = try syscall("cannot create a TCP socket") {
            socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        do {
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            try withSockaddr(address, port) { pointer, length throws(AgentError) in
                try syscall("cannot bind \(describe(address, port))") { bind(fd, pointer, length) }
            }
            try syscall("cannot listen on \(describe(address, port))") { listen(fd, backlog) }
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    /// `10.0.0.1:9962` or `[::1]:9962`.
    static func describe(_ address: [UInt8], _ port: UInt16) -> String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = address.withUnsafeBytes { inet_ntop(address.count == 4 ? AF_INET : AF_INET6, $0.baseAddress, &text, 64) }
        let host = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return address.count == 4 ? "\(host):\(port)" : "[\(host)]:\(port)"
    }

    private static func withSockaddr(
        _ address: [UInt8], _ port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) throws(AgentError) -> Void
    ) throws(AgentError) {
        if address.count == 4 {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: address) }
            try generic(&sa, body)
        } else {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: address) }
            try generic(&sa, body)
        }
    }

    /// A family's socket address seen as the generic `sockaddr` with its length.
    private static func generic<Address>(
        _ address: inout Address, _ body: (UnsafePointer<sockaddr>, socklen_t) throws(AgentError) -> Void
    ) throws(AgentError) {
        try withUnsafePointer(to: &address) { pointer throws(AgentError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(AgentError) in
                try body(sa, socklen_t(MemoryLayout<Address>.size))
            }
        }
    }
}
