import DatapathCore
import FoundationEssentials
import Glibc
import Synchronization

/// Garbage collection of the conntrack table (na_ct), as Cilium's CT GC does it.
///
/// The datapath stamps every entry with an absolute expiry (CLOCK_MONOTONIC seconds) from the lifetimes this
/// plugin writes into na_config, and ignores expired entries; the plugin removes them, and the entries of endpoints
/// that no longer exist, so the LRU table never has to evict live flows to make room. Sweeps run at an adaptive
/// interval (``GCInterval``), early when the table fills (``checkPressure()``), and per endpoint when one is
/// removed. `GET|DELETE /v1/ct` lists and flushes entries.
public final class ConntrackGCPlugin: DatapathPlugin {
    public let name = "conntrack-gc"
    public var ownedMaps: [String] { ["na_ct", "na_ct_created"] }

    /// How often the pressure probe reads the creation counter: one syscall, so cheap enough to run often.
    public static let pressureProbeInterval: Duration = .seconds(5)

    /// What `start` wires up; absent before start and after stop.
    private struct Running: Sendable {
        var context: PluginContext
        var sweeper: ConntrackSweeper
        var counter: CreationCounter?
    }

    private struct State: Sendable {
        var config = ConntrackGCConfig()
        var interval: GCInterval
        var running: Running?
        var runs = 0
        var last: SweepStats?
        var lastAt: Date?
        var lastInstant: ContinuousClock.Instant?
        var lastError: String?
        /// Baseline of the fill estimate; nil until the first sweep after start.
        var fill: FillEstimate?
    }

    private let state: Mutex<State>
    /// Serializes walks that delete (scheduled, pressure, endpoint removal, API flush): each reads and deletes in
    /// batches, and two at once would only race each other for the same entries.
    private let walking = Mutex(())

    public init() {
        let config = ConntrackGCConfig()
        state = Mutex(
            State(
                config: config,
                interval: GCInterval(
                    initial: config.intervalInitial, minimum: config.intervalMin, maximum: config.intervalMax)))
    }

    // MARK: Lifecycle

    public func configure(_ options: JSON) throws {
        let config = try ConntrackGCConfig.parse(options, fieldPrefix: "plugins.\(name)")
        state.withLock { state in
            state.config = config
            state.interval = GCInterval(
                initial: config.intervalInitial, minimum: config.intervalMin, maximum: config.intervalMax)
        }
    }

    /// Nothing to rebuild: the live endpoints are read from na_endpoints at every sweep, which survives restarts
    /// pinned, and the first pressure probe after start sweeps what accumulated while the agent was down.
    public func restore(_ context: PluginContext) throws {}

    public func start(_ context: PluginContext) throws {
        let datapath = context.datapath
        let sweeper = try ConntrackSweeper(
            conntrack: datapath.map("na_ct"), endpoints: try? datapath.map("na_endpoints"))
        if let problem = sweeper.kernelSweepProblem {
            context.logger.warning(
                "conntrack sweeps read every entry into user space: the in-kernel sweep did not load",
                metadata: ["error": "\(problem)"])
        }
        let counter = CreationCounter(try? datapath.map("na_ct_created"))
        if counter == nil {
            context.logger.warning("na_ct_created is missing: no early sweeps on table pressure")
        }
        let config = state.withLock { $0.config }
        try DatapathLifetimes.write(config, to: datapath.map("na_config"))
        ConntrackDecoders.register(on: datapath)
        state.withLock { state in
            state.running = Running(context: context, sweeper: sweeper, counter: counter)
            state.fill = nil
        }
    }

    public func stop() {
        state.withLock { $0.running = nil }
    }

    public var periodicJobs: [PeriodicJob] {
        [
            PeriodicJob(
                name: "sweep", interval: { [self] in .seconds(intervalSeconds) },
                run: { [self] in
                    _ = try? sweep()
                }),
            PeriodicJob(
                name: "pressure", interval: { Self.pressureProbeInterval },
                run: { [self] in
                    _ = checkPressure()
                }),
        ]
    }

    public var routes: [Route] { ConntrackRoutes(plugin: self).routes }

    public func handle(_ event: DatapathEvent) {
        guard case .endpointRemoved(let id, _) = event, let running = state.withLock({ $0.running }) else { return }
        do {
            let stats = try flush(endpoint: id)
            running.context.logger.info(
                "conntrack entries of removed endpoint deleted",
                metadata: ["endpoint": "\(id)", "deleted": "\(stats.deleted)"])
        } catch {
            running.context.logger.error(
                "deleting conntrack entries of removed endpoint failed",
                metadata: ["endpoint": "\(id)", "error": "\(error)"])
        }
    }

    // MARK: Sweeps

    /// The sweeper of the started plugin; 503 before start.
    func sweeper() throws -> ConntrackSweeper {
        guard let running = state.withLock({ $0.running }) else {
            throw AgentError.unavailable("conntrack-gc is not running")
        }
        return running.sweeper
    }

    /// Runs one full sweep now: expired entries and entries of endpoints gone from na_endpoints. Updates the
    /// statistics, the adaptive interval and the fill baseline.
    @discardableResult
    public func sweep() throws -> SweepStats {
        guard let running = state.withLock({ $0.running }) else {
            throw AgentError.unavailable("conntrack-gc is not running")
        }
        return try walking.withLock { _ in try sweepWalking(running) }
    }

    /// The sweep proper; the caller holds `walking`.
    private func sweepWalking(_ running: Running) throws -> SweepStats {
        let logger = running.context.logger
        // Read before the walk: creations during it count towards the next estimate (an overestimate at worst).
        let createdBefore = (try? running.counter?.total()) ?? 0
        let stats: SweepStats
        do {
            stats = try running.sweeper.sweep(now: MonotonicClock.seconds())
        } catch {
            state.withLock { $0.lastError = "\(error)" }
            logger.error("conntrack sweep failed", metadata: ["error": "\(error)"])
            throw error
        }
        let interval = state.withLock { state in
            state.runs += 1
            state.last = stats
            state.lastAt = Date()
            state.lastInstant = .now
            state.lastError = nil
            state.interval.adapt(deleted: stats.deleted, maxEntries: running.sweeper.maxEntries)
            state.fill = FillEstimate(entries: stats.remaining, created: createdBefore)
            return state.interval.seconds
        }
        logger.log(
            level: stats.deleted > 0 ? .info : .debug, "conntrack sweep",
            metadata: [
                "scanned": "\(stats.scanned)", "expired": "\(stats.expired)", "orphaned": "\(stats.orphaned)",
                "remaining": "\(stats.remaining)", "duration-ms": "\(stats.duration.milliseconds)",
                "next-interval-s": "\(interval)",
            ])
        return stats
    }

    /// The pressure probe: estimates the table's fill from the entries the last sweep left plus the datapath's
    /// creations since, and sweeps early when it reaches `pressure-threshold` × max entries (but not sooner than
    /// `interval-min` after the previous sweep, so a table full of live flows is not swept back to back).
    /// The first probe after start always sweeps, to set the baseline. A probe during another walk does nothing:
    /// that walk resets the baseline. Returns whether it swept.
    @discardableResult
    public func checkPressure() -> Bool {
        walking.withLockIfAvailable { _ in checkPressureWalking() } ?? false
    }

    private func checkPressureWalking() -> Bool {
        let (running, fill, config, lastInstant) = state.withLock { ($0.running, $0.fill, $0.config, $0.lastInstant) }
        guard let running else { return false }
        guard let fill else { return (try? sweepWalking(running)) != nil }
        guard let counter = running.counter, let created = try? counter.total() else { return false }
        let estimate = fill.estimate(createdNow: created)
        let maxEntries = running.sweeper.maxEntries
        guard Double(estimate) >= config.pressureThreshold * Double(maxEntries) else { return false }
        if let lastInstant, ContinuousClock.now - lastInstant < .seconds(config.intervalMin) { return false }
        running.context.logger.info(
            "conntrack table under pressure: sweeping early",
            metadata: ["estimated-entries": "\(estimate)", "max-entries": "\(maxEntries)"])
        return (try? sweepWalking(running)) != nil
    }

    /// Deletes the entries of endpoint `id`.
    @discardableResult
    public func flush(endpoint id: UInt32) throws -> SweepStats {
        let sweeper = try sweeper()
        return try walking.withLock { _ in try sweeper.purge(endpoint: id) }
    }

    /// Deletes every entry.
    @discardableResult
    public func flushAll() throws -> SweepStats {
        let sweeper = try sweeper()
        return try walking.withLock { _ in try sweeper.purge { _, _ in true } }
    }

    /// Seconds until the next scheduled sweep, as the adaptive interval stands.
    public var intervalSeconds: Int { state.withLock { $0.interval.seconds } }

    /// The fill estimate now (entries), or nil before the first sweep or without the creation counter.
    public func estimatedEntries() -> Int? {
        let (running, fill) = state.withLock { ($0.running, $0.fill) }
        guard let fill, let counter = running?.counter, let created = try? counter.total() else { return nil }
        return fill.estimate(createdNow: created)
    }

    // MARK: Reporting

    public func status() -> JSON {
        let snapshot = state.withLock { $0 }
        let last = snapshot.last ?? SweepStats()
        var object: [String: JSON] = [
            "last-sweep": snapshot.lastAt.map { .string($0.formatted(.iso8601)) } ?? .null,
            "scanned": .int(Int64(last.scanned)),
            "deleted": .int(Int64(last.deleted)),
            "duration-ms": .double(last.duration.seconds * 1000),
            "interval-seconds": .int(Int64(snapshot.interval.seconds)),
            "entries": .int(Int64(last.remaining)),
            "max-entries": .int(Int64(snapshot.running?.sweeper.maxEntries ?? 0)),
            "runs": .int(Int64(snapshot.runs)),
        ]
        if let sweeper = snapshot.running?.sweeper {
            object["sweep"] = .string(sweeper.kernelSweep == nil ? "user space" : "kernel")
            if let problem = sweeper.kernelSweepProblem { object["kernel-sweep-problem"] = .string(problem) }
        }
        if let estimate = estimatedEntries() { object["estimated-entries"] = .int(Int64(estimate)) }
        if let error = snapshot.lastError { object["last-error"] = .string(error) }
        return .object(object)
    }

    public func metrics() -> [MetricSample] {
        let (last, runs, interval) = state.withLock { ($0.last ?? SweepStats(), $0.runs, $0.interval.seconds) }
        return [
            MetricSample(
                name: "nodeagent_ct_entries", value: Double(last.remaining),
                help: "Conntrack entries left by the last GC sweep"),
            MetricSample(
                name: "nodeagent_ct_gc_runs_total", value: Double(runs), help: "Conntrack GC sweeps run",
                type: "counter"),
            MetricSample(
                name: "nodeagent_ct_gc_deleted", value: Double(last.deleted),
                help: "Conntrack entries deleted by the last GC sweep"),
            MetricSample(
                name: "nodeagent_ct_gc_duration_seconds", value: last.duration.seconds,
                help: "Duration of the last conntrack GC sweep"),
            MetricSample(
                name: "nodeagent_ct_gc_interval_seconds", value: Double(interval),
                help: "Interval until the next scheduled conntrack GC sweep"),
        ]
    }
}

/// The plugin as the agent's plugin list takes it.
public func makePlugin() -> any DatapathPlugin { ConntrackGCPlugin() }

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
