import DatapathCore
import Dispatch
import FoundationEssentials
import Logging
import Preflight
import Synchronization

/// The running agent: datapath, plugins, runtime options, and (in the files beside this one) endpoints,
/// identities and policies. Every mutation runs under `state`'s lock, so API handlers are safe in parallel.
public final class NodeAgent: Sendable {
    let config: AgentConfig
    let datapath: Datapath
    let registry: PluginRegistry
    let store: StateStore
    let logger = Logger(label: "agent")
    let logLevel: LogLevelBox
    let runtime: Mutex<RuntimeOptions>
    let startedAt = ContinuousClock.now
    let state: Mutex<AgentState>
    let restored: Bool
    let observability: Observability
    /// `GET /v1/endpoint` answers, per label filter, serialized, with the state `version` they show.
    let endpointListCache = Mutex(EndpointListCache())
    /// The last policy generation handed to an endpoint (see `Endpoint.policyGeneration`). Outside `state` so a
    /// rolled-back change never hands out a generation twice; starts above every generation the datapath holds.
    let policyGenerations: Atomic<UInt32>
    /// Endpoints whose policy was updated for changed peers only (`Regeneration+PeerDelta.swift`), since start.
    let incrementalRegenerations = Atomic<Int>(0)
    /// What withdrawn policy keys left in the policy table's filters (`NodeAgent+PolicyFilters.swift`); taken only
    /// under `state`'s lock.
    let policyFilters = Mutex(PolicyFilterUpkeep())
    /// When an endpoint change last read the node's addresses (nil: never).
    let hostAddressesRefreshed = Mutex<ContinuousClock.Instant?>(nil)
    /// This node's part in a cluster; nil when the agent runs standalone.
    let cluster: ClusterMode?
    /// The kernel preflight the daemon ran before starting (see `kernelPreflight`).
    let preflightReport = Mutex<PreflightReport?>(nil)
    /// `kernel` of `GET /v1/healthz`, serialized once (see `kernelHealthBytes`).
    /// The last `GET /v1/healthz` answer with the state version and uptime second it shows (see `healthBody`).
    let healthCache = Mutex<(version: UInt64, second: Int64, body: [UInt8])?>(nil)
    let preflightHealth = Mutex<[UInt8]?>(nil)
    /// The load balancer's maps; nil in an agent built without one, whose services are stored but not programmed.
    let serviceDatapath: (any ServiceDatapath)?
    /// The socket load balancer the daemon started (`services.enabled`); its maps are `serviceDatapath`.
    let serviceLoadBalancing: SocketLoadBalancing?
    /// The kernel's HTTP enforcement (`L7/`); nil when it could not start or failed its self-test, with the reason
    /// in `l7Problem`: HTTP rules are then refused.
    let l7: L7Enforcement?
    let l7Problem: String?
    /// Closes the connections of refused HTTP requests (see `L7DeniedConnections`).
    let deniedHTTPConnections = L7DeniedConnections()
    /// Where the connections of backends that left a service are ended, one change after the other.
    let connectionTermination = DispatchQueue(label: "nodeagent.service-connection-termination")
    /// The external interfaces carrying the netdev programs for services (`attachServiceDevices`).
    let serviceDevices = Mutex<[String]>([])

    public init(
        config: AgentConfig, plugins: [any DatapathPlugin], logLevel: LogLevelBox,
        serviceDatapath: (any ServiceDatapath)? = nil, serviceLoadBalancing: SocketLoadBalancing? = nil
    ) throws {
        self.config = config
        self.serviceLoadBalancing = serviceLoadBalancing
        self.serviceDatapath = serviceDatapath ?? serviceLoadBalancing?.datapath
        self.logLevel = logLevel
        cluster = try config.cluster.map { config throws(AgentError) in try ClusterMode(config: config) }
        // No directory fsync after every change: it doubled the cost of each, and a power loss can then at worst
        // bring back a document a few seconds old, never a broken one.
        store = try StateStore(directory: config.stateDir, syncsDirectory: false)
        try Ownership.markStateDirectory(config.stateDir)
        restored = Self.hasSavedState(store)
        registry = PluginRegistry(plugins: plugins, logger: Logger(label: "plugins"))
        try registry.configure(Self.claimingPodCIDRs(config.plugins, cluster: cluster, store: store, logger: logger))
        var maxEntries = config.mapSizes.merging(registry.mapSizes) { explicit, _ in explicit }
        maxEntries.removeValue(forKey: PolicyMapLayout.outerMap)
        // The host hash holds a subset of the trie: sized with it unless sized itself.
        if maxEntries[IPCache.hostName] == nil { maxEntries[IPCache.hostName] = maxEntries[IPCache.trieName] }
        datapath = try Datapath(root: config.bpfRoot, maxEntries: maxEntries)
        try IPCache(datapath: datapath).syncHostEntries()
        try datapath.endpointSlots.restore()
        (l7, l7Problem) = Self.startL7(config: config, maxEntries: maxEntries)
        for name in datapath.object.replacedPins {
            logger.warning(
                "a pinned map had another layout or size; replaced it with an empty one",
                metadata: ["map": "\(name)", "pin": "\(config.bpfRoot)/\(name)"])
        }
        policyGenerations = Atomic(
            try EndpointDatapath(datapath: datapath, policyMapEntries: config.policyMapEntries).endpointRows()
                .map(\.policyGeneration).max() ?? 0)
        var runtime = config.runtime
        if let saved = try store.read("config") { try? runtime.apply(patch: saved) }
        self.runtime = Mutex(runtime)
        logLevel.value = Logger.Level(rawValue: runtime.logLevel.rawValue) ?? .info
        state = Mutex(AgentState(config: config))
        observability = try Observability(config: config)
        try writeDatapathDefaults()
        CoreMapDecoders.register(on: datapath) { [weak self] id in self?.state.withLock { $0.ruleName(id) } }
        LBMapDecoders.register(on: datapath)
        try observability.start(agent: self)
    }

    /// Lifetimes the datapath reads, written once when the map is still zero (the conntrack plugin owns them after
    /// that), and the event settings of the runtime options.
    private func writeDatapathDefaults() throws {
        let map: TypedMap<UInt32, na_config> = try datapath.typedMap("na_config")
        if try map.lookup(0).map({ $0.ct_lifetime_tcp == 0 }) ?? true {
            var value = na_config()
            value.ct_lifetime_tcp = 8000
            value.ct_lifetime_syn = 60
            value.ct_lifetime_closing = 10
            value.ct_lifetime_nontcp = 60
            try map.update(0, value)
        }
        try writeDatapathSettings(runtime.withLock { $0 })
    }

    /// The runtime options the datapath reads from na_config: drops produce events (at most one per flow and
    /// `drop-event-interval`), allowed new connections one in `allowed-flow-sampling` (none for 0), and whether
    /// the node's own traffic meets ingress policy; and `host-routing`, which fills or empties the slot
    /// from_endpoint hands packets for local endpoints to.
    func writeDatapathSettings(_ options: RuntimeOptions) throws {
        try endpointDatapath.setLocalDelivery(options.hostRouting == .bpf)
        let map: TypedMap<UInt32, na_config> = try datapath.typedMap("na_config")
        var value = try map.lookup(0) ?? na_config()
        let sampling = options.allowedFlowSampling
        value.flags =
            UInt32(NA_CFG_EVENTS_DROPPED) | (sampling > 0 ? UInt32(NA_CFG_EVENTS_ALLOWED) : 0)
            | (options.allowLocalhost == .policy ? UInt32(NA_CFG_LOCALHOST_POLICY) : 0)
        value.allowed_sample_rate = UInt32(max(sampling, 1))
        value.drop_event_interval_ms = UInt32(options.dropEventInterval.value)
        try map.update(0, value)
    }

    func startPlugins() {
        registry.startAll { plugin in
            PluginContext(
                datapath: datapath, logger: Logger(label: plugin.name),
                stateDirectory: "\(config.stateDir)/plugins/\(plugin.name)", restored: restored)
        }
    }

    func stop() {
        cluster?.stop()
        registry.stopAll()
        observability.stop()
        // Only the descriptors close: the pinned links and maps go on translating services and deciding requests.
        serviceLoadBalancing?.stop()
        l7?.stop()
        // Hooks not yet moved stay on their clsact filters, which run the same programs.
        datapath.tcxMoves.stop()
        // Slots not filled yet stay invalid: packets read those rows from na_endpoints.
        datapath.endpointSlots.stop()
    }

    /// Every route the agent serves: its own and the enabled plugins'.
    public var routes: [Route] {
        observability.instrument(
            DaemonRoutes(agent: self).routes + ClusterRoutes(agent: self).routes + MapRoutes(datapath: datapath).routes
                + IPCacheRoute(agent: self).routes + endpointRoutes + identityRoutes + policyRoutes + serviceRoutes
                + registry.routes + observabilityRoutes
        )
        .map(postponingTCXMoves)
    }

    /// A request that changes anything postpones the moves of tc hooks onto tcx links (`TCXMoves`): each holds the
    /// rtnl lock through an RCU grace period and nothing the API answers waits for it, so moves run while the agent
    /// is idle.
    private func postponingTCXMoves(_ route: Route) -> Route {
        guard route.method != .GET else { return route }
        var route = route
        let (handler, moves) = (route.handler, datapath.tcxMoves)
        route.handler = { request in
            moves.postpone()
            return try handler(request)
        }
        return route
    }
}
