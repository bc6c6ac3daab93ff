import DatapathCore
import Logging
import Synchronization

/// Masquerading: pod traffic leaving the cluster through the node's external interface gets the node's address
/// and a port from the configured range, translated by the datapath's `to_netdev` / `from_netdev` programs
/// (bpf/lib/nat.h). The plugin configures and attaches them, garbage-collects na_nat (always both halves of a
/// mapping together), lists and flushes mappings, and reports their use.
///
/// Without `interface` it stays idle. `stop` leaves the programs attached, so translated flows keep working while
/// the agent restarts; `nodeagent cleanup` detaches them.
public final class NATPlugin: DatapathPlugin {
    public let name = "nat"
    public var ownedMaps: [String] { ["na_nat", "na_nat_config", "na_nat_cluster"] }
    public var ownedPrograms: [String] { [NATDatapathConfig.toNetdev, NATDatapathConfig.fromNetdev] }
    public var mapSizes: [String: UInt32] { state.withLock { $0.options.maxEntries.map { ["na_nat": $0] } ?? [:] } }
    public var routes: [Route] { NATRoutes(plugin: self).routes }

    /// Where translation runs.
    struct Active: Sendable {
        var interface: String
        var ifindex: Int32
        var address: IPAddress
    }

    private struct State {
        var options = NATOptions()
        var datapath: Datapath?
        var logger = Logger(label: "nat")
        var active: Active?
        var warnings: [String] = []
        var lastSweep: NATSweepStats?
        var sweeps = 0
        var deletedEntries = 0
        var lastError: String?
    }

    private let state = Mutex(State())

    public init() {}

    public func configure(_ options: JSON) throws {
        let parsed = try NATOptions.parse(options)
        state.withLock { $0.options = parsed }
    }

    public func start(_ context: PluginContext) throws {
        let options = state.withLock { state in
            state.datapath = context.datapath
            state.logger = context.logger
            return state.options
        }
        NATDecoders.register(on: context.datapath)
        let setup = NATDatapathConfig(datapath: context.datapath)
        let previous = try setup.current()
        let previousIfindex =
            previous.flags & UInt32(NA_NAT_CFG_ENABLED) != 0 && previous.ifindex != 0
            ? Int32(bitPattern: previous.ifindex) : nil

        guard let interface = options.interface else {
            try setup.disable()
            if let previousIfindex { setup.detach(ifindex: previousIfindex) }
            state.withLock { $0.active = nil }
            context.logger.info("NAT idle: no interface configured (plugins.nat.interface)")
            return
        }
        guard let ifindex = Interfaces.index(of: interface) else {
            throw AgentError.invalidField(
                "plugins.nat.interface", "no interface \(interface) in the agent's network namespace")
        }
        let assigned = NodeNetwork.ipv4Addresses(of: interface)
        guard let address = options.address ?? assigned.first else {
            throw AgentError.invalidField(
                "plugins.nat.address", "interface \(interface) has no IPv4 address to masquerade with; set address")
        }
        try setup.setClusterPrefixes(options.clusterCIDRs)
        try setup.enable(address: address, ports: options.portRange, ifindex: ifindex)
        try setup.attach(ifindex: ifindex)
        if let previousIfindex, previousIfindex != ifindex { setup.detach(ifindex: previousIfindex) }

        let warnings = Self.warnings(options: options, address: address, assigned: assigned, interface: interface)
        for warning in warnings { context.logger.warning("\(warning)") }
        state.withLock { state in
            state.active = Active(interface: interface, ifindex: ifindex, address: address)
            state.warnings = warnings
        }
        context.logger.info(
            "NAT active",
            metadata: [
                "interface": "\(interface)", "address": "\(address)",
                "ports": "\(options.portRange.lowerBound)-\(options.portRange.upperBound)",
            ])
    }

    /// Configurations that work but can surprise.
    static func warnings(options: NATOptions, address: IPAddress, assigned: [IPAddress], interface: String)
        -> [String]
    {
        var warnings: [String] = []
        if !assigned.contains(address) {
            warnings.append("address \(address) is not assigned to \(interface): replies may never reach the node")
        }
        if let ephemeral = NodeNetwork.ephemeralPorts(), ephemeral.overlaps(options.portRange) {
            warnings.append(
                "port-range \(options.portRange.lowerBound)-\(options.portRange.upperBound) overlaps the node's "
                    + "ephemeral ports \(ephemeral.lowerBound)-\(ephemeral.upperBound) (net.ipv4.ip_local_port_range): "
                    + "a connection of the node itself and a masqueraded one to the same destination can collide")
        }
        return warnings
    }

    public var periodicJobs: [PeriodicJob] {
        [
            PeriodicJob(
                name: "gc", interval: { [self] in state.withLock { $0.options.gcInterval } },
                run: { [self] in _ = try? sweep() })
        ]
    }

    /// One garbage collection sweep of na_nat now.
    @discardableResult
    public func sweep() throws -> NATSweepStats {
        let (datapath, logger) = state.withLock { ($0.datapath, $0.logger) }
        guard let datapath else { throw AgentError.unavailable("the nat plugin is not started") }
        do {
            let sweeper = try NATSweeper(nat: datapath.map("na_nat"), conntrack: try? datapath.map("na_ct"))
            let stats = try sweeper.sweep(now: MonotonicClock.seconds())
            state.withLock { state in
                state.lastSweep = stats
                state.sweeps += 1
                state.deletedEntries += stats.deletedEntries
                state.lastError = nil
            }
            if stats.deletedEntries > 0 {
                logger.debug(
                    "NAT GC",
                    metadata: [
                        "expired": "\(stats.expired)", "untracked": "\(stats.untracked)", "lone": "\(stats.lone)",
                        "mappings": "\(stats.mappings)",
                    ])
            }
            return stats
        } catch {
            state.withLock { $0.lastError = "\(error)" }
            logger.error("NAT GC failed", metadata: ["error": "\(error)"])
            throw error
        }
    }

    /// Deletes every mapping; returns the number of entries (halves) deleted.
    func flush() throws -> Int {
        let deleted = try NATSweeper(nat: natMap(), conntrack: nil).purge(sources: nil)
        state.withLock { $0.deletedEntries += deleted }
        return deleted
    }

    func natMap() throws -> BPFMap {
        guard let datapath = state.withLock({ $0.datapath }) else {
            throw AgentError.unavailable("the nat plugin is not started")
        }
        return try datapath.map("na_nat")
    }

    /// A removed endpoint's mappings go at once: its address may soon belong to another pod.
    public func handle(_ event: DatapathEvent) {
        guard case .endpointRemoved(_, let addresses) = event else { return }
        let sources = Set(addresses.compactMap { IPAddress($0) })
        guard !sources.isEmpty, let map = try? natMap() else { return }
        do {
            let deleted = try NATSweeper(nat: map, conntrack: nil).purge(sources: sources)
            state.withLock { $0.deletedEntries += deleted }
        } catch {
            state.withLock { $0.logger }.error(
                "NAT purge of a removed endpoint failed", metadata: ["error": "\(error)"])
        }
    }

    /// Drops because no port was free (na_metrics, reason NA_DROP_NAT_NO_PORT), summed over CPUs.
    func allocationFailures() -> UInt64 {
        guard let datapath = state.withLock({ $0.datapath }),
            let map: TypedMap<UInt32, na_metrics_value> = try? datapath.typedMap("na_metrics")
        else { return 0 }
        let slot = na_metrics_slot(UInt16(NA_DROP_NAT_NO_PORT.rawValue), UInt8(NA_DIR_EGRESS.rawValue))
        return ((try? map.lookupPerCPU(slot)) ?? nil)?.reduce(0) { $0 &+ $1.packets } ?? 0
    }

    public func status() -> JSON {
        let snapshot = state.withLock { $0 }
        var object: [String: JSON] = ["active": .bool(snapshot.active != nil)]
        if let active = snapshot.active {
            let ports = snapshot.options.portRange
            object["interface"] = .string(active.interface)
            object["ifindex"] = .int(Int64(active.ifindex))
            object["address"] = .string(active.address.description)
            object["port-range"] = .string("\(ports.lowerBound)-\(ports.upperBound)")
            object["cluster-cidrs"] = .array(snapshot.options.clusterCIDRs.map { .string($0.description) })
        } else {
            object["reason"] = "no interface configured (plugins.nat.interface): nothing is masqueraded"
        }
        if !snapshot.warnings.isEmpty { object["warnings"] = .array(snapshot.warnings.map { .string($0) }) }
        var gc: [String: JSON] = [
            "runs": .int(Int64(snapshot.sweeps)), "deleted-entries": .int(Int64(snapshot.deletedEntries)),
        ]
        if let last = snapshot.lastSweep {
            object["mappings"] = .int(Int64(last.mappings))
            gc["last"] = [
                "scanned": .int(Int64(last.scanned)), "expired": .int(Int64(last.expired)),
                "untracked": .int(Int64(last.untracked)), "lone": .int(Int64(last.lone)),
                "duration-ms": .double(
                    Double(last.duration.components.attoseconds) / 1e15
                        + Double(last.duration.components.seconds) * 1000),
            ]
        }
        if let error = snapshot.lastError { gc["error"] = .string(error) }
        object["gc"] = .object(gc)
        object["alloc-failures"] = .int(Int64(clamping: allocationFailures()))
        return .object(object)
    }

    public func metrics() -> [MetricSample] {
        let (last, deleted, ports) = state.withLock {
            ($0.lastSweep, $0.deletedEntries, $0.options.portRange.count)
        }
        var samples = [
            MetricSample(
                name: "nodeagent_nat_mappings", value: Double(last?.mappings ?? 0),
                help: "NAT mappings (flows masqueraded) at the last GC sweep"),
            MetricSample(
                name: "nodeagent_nat_ports", value: Double(ports),
                help: "Ports in the NAT range, available to each destination address, port and protocol"),
            MetricSample(
                name: "nodeagent_nat_alloc_failures_total", value: Double(allocationFailures()),
                help: "Packets dropped because no NAT port was free", type: "counter"),
            MetricSample(
                name: "nodeagent_nat_gc_deleted_entries_total", value: Double(deleted),
                help: "na_nat entries deleted by GC, flushes and endpoint removals", type: "counter"),
        ]
        for use in last?.topDestinations ?? [] {
            samples.append(
                MetricSample(
                    name: "nodeagent_nat_port_use", labels: ["destination": use.destination],
                    value: Double(use.mappings),
                    help: "NAT ports in use towards a destination (the most used ones) at the last GC sweep"))
        }
        return samples
    }
}
