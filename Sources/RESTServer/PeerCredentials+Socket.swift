import AgentAPI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension PeerCredentials {
    /// The credentials of the process that connected the Unix socket `fd`, as the kernel recorded them at connect
    /// time (SO_PEERCRED), or nil if the socket has none.
    init?(socket fd: Int32) {
        // struct ucred is { pid_t pid; uid_t uid; gid_t gid; }; Glibc hides it behind _GNU_SOURCE, which the Swift
        // Glibc module does not define, so read the three 32-bit fields directly.
        var raw: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: raw))
        guard fd >= 0, getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &raw, &length) == 0,
            length == socklen_t(MemoryLayout.size(ofValue: raw))
        else { return nil }
        self.init(uid: raw.1, gid: raw.2, pid: raw.0)
    }
}
