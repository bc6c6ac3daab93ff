import AgentAPI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A listening Unix stream socket bound at a path, set up so that restarts are safe: a stale socket file left by a
/// crashed agent is replaced, a live one (another agent answering) is never stolen.
struct UnixListener: Sendable {
    let path: String
    /// The listening socket. Ownership passes to the HTTP daemon once it starts.
    let fd: Int32
    /// Device and inode of the socket file we created, so stop() removes our file and not a successor's.
    private let device: UInt64
    private let inode: UInt64

    /// Creates the parent directory (0755) if missing, deals with an existing file at `path`, binds, applies
    /// `mode` and `group`, then listens.
    static func open(path: String, mode: mode_t, group: String?, backlog: Int32 = 128) throws(AgentError)
        -> UnixListener
    {
        var address = try socketAddress(path)
        try createParentDirectory(of: path)
        try clearExistingFile(at: path)

        let fd = try syscall("cannot create a Unix socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0) }
        var bound = false
        do {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = try withSockaddr(&address) { pointer, length throws(AgentError) in
                try syscall("cannot bind \(path)") { bind(fd, pointer, length) }
            }
            bound = true
            // The socket file is created with the umask applied; set the mode explicitly. Nobody can connect
            // before listen(), so the file is never reachable with looser permissions.
            try syscall("cannot set mode \(String(mode, radix: 8)) on \(path)") { chmod(path, mode) }
            if let group {
                let gid = try lookupGroup(group)
                try syscall("cannot give \(path) to group \(group)") { chown(path, uid_t.max, gid) }
            }
            try syscall("cannot listen on \(path)") { listen(fd, backlog) }
            var info = stat()
            try syscall("cannot stat \(path)") { stat(path, &info) }
            return UnixListener(path: path, fd: fd, device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        } catch {
            close(fd)
            if bound { unlink(path) }
            throw error
        }
    }

    /// Removes the socket file if it is still the one we bound.
    func removeSocketFile() {
        var info = stat()
        guard lstat(path, &info) == 0, UInt64(info.st_dev) == device, UInt64(info.st_ino) == inode else { return }
        unlink(path)
    }

    private static func socketAddress(_ path: String) throws(AgentError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
            throw .invalidField("socket", "\"\(path)\" is not a usable socket path (1 to \(capacity - 1) bytes)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return address
    }

    private static func withSockaddr<R>(
        _ address: inout sockaddr_un, _ body: (UnsafePointer<sockaddr>, socklen_t) throws(AgentError) -> R
    ) throws(AgentError) -> R {
        let length = socklen_t(MemoryLayout<sockaddr_un>.size)
        return try withUnsafePointer(to: &address) { pointer throws(AgentError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(AgentError) in
                try body(sa, length)
            }
        }
    }

    /// mkdir -p with mode 0755 for every missing ancestor.
    private static func createParentDirectory(of path: String) throws(AgentError) {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let parent = path[..<slash]
        var prefix = parent.hasPrefix("/") ? "" : "."
        for component in parent.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0, errno != EEXIST {
                throw .unavailable("cannot create directory \(prefix): \(errnoDescription(errno))")
            }
        }
    }

    /// A socket file that nobody answers on is stale and removed; one that answers means another agent is
    /// running, and anything that is not a socket is left alone.
    private static func clearExistingFile(at path: String) throws(AgentError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw .conflict("\(path) exists and is not a socket; refusing to replace it")
        }
        if try isAnswering(path) {
            throw .conflict("another agent is serving \(path)")
        }
        try syscall("cannot remove stale socket \(path)") { unlink(path) }
    }

    private static func isAnswering(_ path: String) throws(AgentError) -> Bool {
        var address = try socketAddress(path)
        let fd = try syscall("cannot create a Unix socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0) }
        defer { close(fd) }
        let result = try withSockaddr(&address) { pointer, length in connect(fd, pointer, length) }
        if result == 0 { return true }
        switch errno {
        case ECONNREFUSED, ENOENT: return false
        case let code: throw .unavailable("cannot check existing socket \(path): \(errnoDescription(code))")
        }
    }

    private static func lookupGroup(_ group: String) throws(AgentError) -> gid_t {
        if let gid = gid_t(group) { return gid }
        var entry = group_t()
        var result: UnsafeMutablePointer<group_t>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        let status = getgrnam_r(group, &entry, &buffer, buffer.count, &result)
        guard status == 0, let found = result else {
            throw .invalidField("socket-group", "no group named \"\(group)\"")
        }
        return found.pointee.gr_gid
    }
}

private typealias group_t = group
