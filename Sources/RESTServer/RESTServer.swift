import AgentAPI
import CMicroHTTPD
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The agent's HTTP server, libmicrohttpd with a pool of worker threads: the JSON API on a Unix socket, and
/// (with the same router machinery) any route set on a TCP address, such as `/metrics` for Prometheus.
///
/// Requests are dispatched to a ``Router``; handlers run on the worker threads, so they must be safe to call in
/// parallel. Mutating requests are logged at info with the caller's uid, gid and pid (SO_PEERCRED).
public final class RESTServer: Sendable {
    /// A running daemon. Only touched under `running`'s lock; MHD's own threads never see this struct.
    private struct Running: @unchecked Sendable {
        let daemon: OpaquePointer
        /// The socket file to remove on stop (Unix sockets only).
        let unixListener: UnixListener?
        let core: Unmanaged<ServerCore>
    }

    /// Where a server listens.
    public enum Endpoint: Sendable, Equatable {
        /// A Unix socket file, created with `Options.socketMode` and `socketGroup`.
        case unixSocket(path: String)
        /// An IPv4 (4 bytes) or IPv6 (16 bytes) address, network order, and a port.
        case tcp(address: [UInt8], port: UInt16)
    }

    public let endpoint: Endpoint
    /// The socket path, or `address:port` for TCP: what logs and errors name.
    public let socketPath: String
    public let options: Options
    private let router: Router
    private let logger: Logger
    private let running = Mutex<Running?>(nil)

    /// A server for `router` at `socketPath`; nothing is opened until ``start()``.
    /// Handler errors that are not ``AgentError`` are logged here unless the router already reports them elsewhere.
    public convenience init(socketPath: String, router: Router, options: Options = Options(), logger: Logger) {
        self.init(endpoint: .unixSocket(path: socketPath), router: router, options: options, logger: logger)
    }

    /// A server for `router` at `endpoint`; nothing is opened until ``start()``.
    public init(endpoint: Endpoint, router: Router, options: Options = Options(), logger: Logger) {
        self.endpoint = endpoint
        switch endpoint {
        case .unixSocket(let path): socketPath = path
        case .tcp(let address, let port): socketPath = TCPListener.describe(address, port)
        }
        self.options = options
        self.logger = logger
        var router = router
        if router.onUnexpectedError == nil {
            router.onUnexpectedError = { request, error in
                logger.error(
                    "handler failed",
                    metadata: [
                        "method": "\(request.method)", "path": "\(request.path)",
                        "error": "\(error)",
                    ])
            }
        }
        self.router = router
    }

    deinit {
        stop()
    }

    /// Whether the server is serving.
    public var isRunning: Bool { running.withLock { $0 != nil } }

    /// Creates the socket (replacing a stale one, refusing if another agent answers on it) and starts serving.
    public func start() throws(AgentError) {
        try running.withLock { running throws(AgentError) in
            guard running == nil else { throw AgentError.conflict("the API server is already serving \(socketPath)") }
            try validateOptions()
            let unixListener: UnixListener?
            let listenFD: Int32
            switch endpoint {
            case .unixSocket(let path):
                let listener = try UnixListener.open(path: path, mode: options.socketMode, group: options.socketGroup)
                (unixListener, listenFD) = (listener, listener.fd)
            case .tcp(let address, let port):
                (unixListener, listenFD) = (nil, try TCPListener.open(address: address, port: port))
            }
            let waker = StreamWaker(interval: options.streamPollInterval)
            let core = Unmanaged.passRetained(
                ServerCore(router: router, maxBodyBytes: options.maxBodyBytes, logger: logger, waker: waker))
            guard
                let daemon = startDaemon(
                    listenFD: listenFD, threads: options.threads, timeoutSeconds: options.connectionTimeoutSeconds,
                    core: core)
            else {
                close(listenFD)
                unixListener?.removeSocketFile()
                core.release()
                throw AgentError.unavailable("libmicrohttpd could not start serving \(socketPath)")
            }
            waker.start()
            running = Running(daemon: daemon, unixListener: unixListener, core: core)
            logger.info(
                "API listening",
                metadata: [
                    "socket": "\(socketPath)", "threads": "\(options.threads)",
                    "mode": "\(String(options.socketMode, radix: 8))",
                ])
        }
    }

    /// Stops serving: open connections are closed, streams end, and the socket file is removed. Idempotent.
    public func stop() {
        running.withLock { running in
            guard let current = running else { return }
            running = nil
            let core = current.core.takeUnretainedValue()
            // MHD must not find suspended connections when it stops.
            // Parked streams are resumed, then every stream gets its terminating chunk before connections close.
            core.waker.stop()
            core.waker.waitForStreamsToEnd(timeout: .seconds(1))
            MHD_stop_daemon(current.daemon)  // also closes the listening socket
            current.unixListener?.removeSocketFile()
            current.core.release()
            logger.info("API stopped", metadata: ["socket": "\(socketPath)"])
        }
    }

    private func validateOptions() throws(AgentError) {
        guard options.maxBodyBytes > 0 else { throw .invalidField("max-body-bytes", "must be positive") }
        guard (1...1024).contains(options.threads) else {
            throw .invalidField("threads", "must be between 1 and 1024, got \(options.threads)")
        }
        guard options.connectionTimeoutSeconds >= 0 else {
            throw .invalidField("connection-timeout", "must not be negative")
        }
        guard options.socketMode & ~0o777 == 0 else {
            throw .invalidField("socket-mode", "must be permission bits (at most 0777)")
        }
    }
}
