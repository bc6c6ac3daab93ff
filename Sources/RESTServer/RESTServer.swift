import AgentAPI
import CMicroHTTPD
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The agent's HTTP/JSON API on a Unix socket, served by libmicrohttpd with a pool of worker threads.
///
/// Requests are dispatched to a ``Router``; handlers run on the worker threads, so they must be safe to call in
/// parallel. Mutating requests are logged at info with the caller's uid, gid and pid (SO_PEERCRED).
public final class RESTServer: Sendable {
    /// A running daemon. Only touched under `running`'s lock; MHD's own threads never see this struct.
    private struct Running: @unchecked Sendable {
        let daemon: OpaquePointer
        let listener: UnixListener
        let core: Unmanaged<ServerCore>
    }

    public let socketPath: String
    public let options: Options
    private let router: Router
    private let logger: Logger
    private let running = Mutex<Running?>(nil)

    /// A server for `router` at `socketPath`; nothing is opened until ``start()``.
    /// Handler errors that are not ``AgentError`` are logged here unless the router already reports them elsewhere.
    public init(socketPath: String, router: Router, options: Options = Options(), logger: Logger) {
        self.socketPath = socketPath
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
            let listener = try UnixListener.open(
                path: socketPath, mode: options.socketMode, group: options.socketGroup)
            let waker = StreamWaker(interval: options.streamPollInterval)
            let core = Unmanaged.passRetained(
                ServerCore(router: router, maxBodyBytes: options.maxBodyBytes, logger: logger, waker: waker))
            guard
                let daemon = startDaemon(
                    listenFD: listener.fd, threads: options.threads, timeoutSeconds: options.connectionTimeoutSeconds,
                    core: core)
            else {
                close(listener.fd)
                listener.removeSocketFile()
                core.release()
                throw AgentError.unavailable("libmicrohttpd could not start serving \(socketPath)")
            }
            waker.start()
            running = Running(daemon: daemon, listener: listener, core: core)
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
            current.listener.removeSocketFile()
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
