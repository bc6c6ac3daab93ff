import CGlibc
import DatapathCore
import FoundationEssentials
import Glibc
import Logging
import Preflight
import RESTServer

/// Starts the agent: datapath, restored state, plugins, then the API; runs until SIGTERM or SIGINT. Under a
/// `Type=notify` unit it reports READY=1 once the API serves and STOPPING=1 when shutdown begins.
public final class Daemon: Sendable {
    public static let version = "0.1.0"

    let config: AgentConfig
    let logLevel: LogLevelBox
    let logger: Logger
    let plugins: [any DatapathPlugin]

    public init(config: AgentConfig, plugins: [any DatapathPlugin], logLevel: LogLevelBox) {
        self.config = config
        self.plugins = plugins
        self.logLevel = logLevel
        logger = Logger(label: "daemon")
    }

    /// Runs the agent until a termination signal; returns the exit status.
    public func run() -> Int32 {
        do {
            if UnixSocketProbe.isServing(config.socketPath) {
                logger.error("another agent is serving the API socket", metadata: ["socket": "\(config.socketPath)"])
                return 1
            }
            let started = ContinuousClock.now
            // Before anything is created or loaded: an agent that would start half-working does not start.
            let preflight = config.preflight(linked: plugins.map(\.name))
            if let refusal = preflight.refusal {
                for line in preflight.lines(onlyMissing: true) { logger.error("kernel preflight: \(line)") }
                logger.error("agent refuses to start: \(refusal)")
                return 1
            }
            let loadBalancing = try startLoadBalancing()
            let agent: NodeAgent
            do {
                agent = try NodeAgent(
                    config: config, plugins: plugins, logLevel: logLevel, serviceLoadBalancing: loadBalancing)
            } catch {
                loadBalancing?.stop()
                throw error
            }
            agent.preflightReport.withLock { $0 = preflight }
            // Plugins first: restoring regenerates every policy map, and CIDR rules need the plugin that holds
            // prefix identities (rebuilt from the pinned ipcache when it starts).
            agent.startPlugins()
            // After the plugins: NAT attaches the same programs to its interface.
            agent.attachServiceDevices()
            try agent.restore()
            let server = RESTServer(
                socketPath: config.socketPath, router: Router(routes: agent.routes),
                options: RESTServer.Options(
                    maxBodyBytes: config.maxBodyBytes, threads: config.apiThreads, socketGroup: config.socketGroup),
                logger: Logger(label: "api"))
            try server.start()
            agent.startCluster()
            let notifier = ServiceNotifier(logger: logger)
            // Only now: the socket answers and every restored endpoint and policy is in place.
            notifier.notify(.ready, .status("serving on \(config.socketPath)"))
            logger.info(
                "agent ready",
                metadata: [
                    "socket": "\(config.socketPath)", "bpf-root": "\(config.bpfRoot)",
                    "services-cgroup-root": "\(loadBalancing?.cgroupRoot ?? "none: services not translated")",
                    "startup": "\(ContinuousClock.now - started)", "version": "\(Self.version)",
                ])
            let signal = SignalWaiter.waitForTermination()
            logger.info("shutting down", metadata: ["signal": "\(signal)"])
            notifier.notify(.stopping, .status("shutting down"))
            server.stop()
            agent.stop()
            logger.info("stopped; pinned maps and attached programs stay in place")
            return 0
        } catch let error as AgentError {
            logger.error("agent failed to start: \(error.message)")
            return 1
        } catch {
            logger.error("agent failed to start: \(error)")
            return 1
        }
    }
}

extension Daemon {
    /// The socket load balancer when `services.enabled`: its maps pinned under the bpf root beside the endpoint
    /// maps, its hooks attached at `services.cgroup-root`. Started before the agent so that restoring the saved
    /// services programs them; a map whose pin held another layout is new and empty, and gets them again then.
    func startLoadBalancing() throws -> SocketLoadBalancing? {
        guard config.services.enabled else {
            logger.info("services are not translated: services.enabled is false")
            return nil
        }
        // Marked before the first pin, so `nodeagent cleanup` knows the links and maps are the agent's.
        try BPFFS.prepare(root: config.bpfRoot)
        try Ownership.markBPFRoot(config.bpfRoot)
        let balancing: SocketLoadBalancing
        do {
            balancing = try SocketLoadBalancing.start(cgroupRoot: config.services.cgroupRoot, pinRoot: config.bpfRoot)
            // Before the saved services are restored into it: each is written with its Maglev table then.
            try balancing.datapath.useBackendSelection(config.services.selection)
        } catch {
            var refused = error
            refused.message +=
                " (services.cgroup-root is \(config.services.cgroupRoot); services.enabled false runs "
                + "the agent without the socket load balancer)"
            throw refused
        }
        for name in balancing.replacedPins {
            logger.warning(
                "a pinned load balancer map had another layout or size; replaced it, saved services fill it again",
                metadata: ["map": "\(name)", "pin": "\(config.bpfRoot)/\(name)"])
        }
        logger.info(
            "socket load balancer attached",
            metadata: ["cgroup-root": "\(balancing.cgroupRoot)", "links": "\(balancing.pinRoot)/sock-links"])
        return balancing
    }
}

/// Blocks until SIGTERM or SIGINT arrives.
enum SignalWaiter {
    static func waitForTermination() -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        // The signals are blocked in every thread (set before threads start in main), so sigwait receives them.
        var signal: Int32 = 0
        while sigwait(&set, &signal) != 0 {}
        return signal
    }

    /// Blocks the termination signals in the calling thread and every thread it starts afterwards.
    static func blockTerminationSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
    }
}

/// Whether something accepts connections on a Unix socket path.
enum UnixSocketProbe {
    static func isServing(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        setTupleBytes(&address.sun_path, bytes + [0])
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return rc == 0
    }
}

extension Daemon {
    /// Process-wide settings made before any thread starts: termination signals go to `sigwait`, SIGPIPE is ignored,
    /// and the heap is shared by at most two malloc arenas.
    ///
    /// glibc gives each thread that allocates an arena of its own (up to 8 per core); the API's worker threads each
    /// kept megabytes of freed memory from a policy import that way (peak RSS 54 MiB against 40 MiB with one arena
    /// in `bench/control-plane.sh`, at the same speed). `MALLOC_ARENA_MAX` in the environment still decides.
    public static func prepareProcess() {
        SignalWaiter.blockTerminationSignals()
        if getenv("MALLOC_ARENA_MAX") == nil { _ = cglibc_limit_malloc_arenas(2) }
    }
}
