#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension RESTServer {
    /// How the server listens and what it accepts.
    public struct Options: Sendable {
        /// Largest request body accepted; larger ones get 413 `payload-too-large`.
        public var maxBodyBytes: Int
        /// Worker threads, each with its own epoll loop; handlers run on them. Streams waiting for data do not
        /// occupy a worker.
        public var threads: Int
        /// Permission bits of the socket file, applied after bind so the umask does not matter.
        public var socketMode: mode_t
        /// Group owning the socket file: a group name or a numeric gid; nil keeps the process's group.
        public var socketGroup: String?
        /// Seconds of inactivity after which a connection is closed.
        public var connectionTimeoutSeconds: Int
        /// How often a stream whose source had nothing to send is asked again: the extra latency a follower may see.
        public var streamPollInterval: Duration

        public init(
            maxBodyBytes: Int = 1 << 20, threads: Int = 4, socketMode: mode_t = 0o660, socketGroup: String? = nil,
            connectionTimeoutSeconds: Int = 60, streamPollInterval: Duration = .milliseconds(100)
        ) {
            self.maxBodyBytes = maxBodyBytes
            self.threads = threads
            self.socketMode = socketMode
            self.socketGroup = socketGroup
            self.connectionTimeoutSeconds = connectionTimeoutSeconds
            self.streamPollInterval = streamPollInterval
        }
    }
}
