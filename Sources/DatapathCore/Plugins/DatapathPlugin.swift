import Logging

/// A separately built module that adds a datapath feature (conntrack GC, NAT, IPAM, CIDR policy) to the agent.
///
/// A plugin declares what it owns (maps, programs, REST routes) and is driven through its lifecycle by the
/// `PluginRegistry`: `configure` with its config section, then `restore` (after an agent restart, before the
/// API serves) or nothing on a fresh start, then `start`; periodic jobs run while it is started; `stop` at shutdown.
public protocol DatapathPlugin: AnyObject, Sendable {
    /// Stable name, used in config (`plugins.<name>`), health and logs, e.g. "conntrack-gc".
    var name: String { get }
    /// Names of the datapath maps this plugin owns (shown as the owner in map listings).
    var ownedMaps: [String] { get }
    /// Names of the datapath programs this plugin owns.
    var ownedPrograms: [String] { get }
    /// Max entries the plugin wants for datapath maps, read after `configure` and applied when the datapath
    /// object loads; the agent's `map-sizes` option wins for a map both name. A pinned map keeps its size.
    var mapSizes: [String: UInt32] { get }
    /// Routes the plugin serves under /v1.
    var routes: [Route] { get }
    /// Jobs the registry runs on a timer while the plugin is started.
    var periodicJobs: [PeriodicJob] { get }

    /// Applies the plugin's config section (an object; empty when absent). Unknown options must be rejected.
    func configure(_ options: JSON) throws
    /// Called once after an agent restart, before `start`, to rebuild in-memory state from pinned maps and state.
    func restore(_ context: PluginContext) throws
    func start(_ context: PluginContext) throws
    func stop()
    /// Reacts to datapath changes the core announces (endpoints added or removed).
    func handle(_ event: DatapathEvent)
    /// Status for /v1/healthz, e.g. counters of the last run.
    func status() -> JSON
    /// Prometheus text lines the plugin contributes to /v1/metrics.
    func metrics() -> [MetricSample]
}

extension DatapathPlugin {
    public var ownedMaps: [String] { [] }
    public var ownedPrograms: [String] { [] }
    public var mapSizes: [String: UInt32] { [:] }
    public var routes: [Route] { [] }
    public var periodicJobs: [PeriodicJob] { [] }
    public func configure(_ options: JSON) throws {
        let keys = options.objectValue.map { Array($0.keys) } ?? []
        try KnownKeys.check(keys, known: [String](), prefix: "plugins.\(name)", kind: "option")
    }
    public func restore(_ context: PluginContext) throws {}
    public func stop() {}
    public func handle(_ event: DatapathEvent) {}
    public func status() -> JSON { [:] }
    public func metrics() -> [MetricSample] { [] }
}

/// What the core tells plugins about.
public enum DatapathEvent: Sendable {
    case endpointAdded(id: UInt32, ifindex: Int32, addresses: [String])
    case endpointRemoved(id: UInt32, addresses: [String])
}

/// One Prometheus sample: `name{labels} value`.
public struct MetricSample: Sendable, Equatable {
    public var name: String
    public var labels: [String: String]
    public var value: Double
    public var help: String
    public var type: String

    public init(name: String, labels: [String: String] = [:], value: Double, help: String = "", type: String = "gauge")
    {
        self.name = name
        self.labels = labels
        self.value = value
        self.help = help
        self.type = type
    }
}

/// A job run periodically; `interval` is asked again after each run, so a job can adapt its own pace.
public struct PeriodicJob: Sendable {
    public var name: String
    public var interval: @Sendable () -> Duration
    public var run: @Sendable () -> Void

    public init(name: String, interval: @escaping @Sendable () -> Duration, run: @escaping @Sendable () -> Void) {
        self.name = name
        self.interval = interval
        self.run = run
    }
}

/// What a plugin gets from the core: the datapath, a logger, a place for its state.
public struct PluginContext: Sendable {
    public var datapath: Datapath
    public var logger: Logger
    /// A directory of the plugin's own under the agent's state directory.
    public var stateDirectory: String
    /// Whether the agent restarted with existing state (restore ran).
    public var restored: Bool

    public init(datapath: Datapath, logger: Logger, stateDirectory: String, restored: Bool) {
        self.datapath = datapath
        self.logger = logger
        self.stateDirectory = stateDirectory
        self.restored = restored
    }
}
