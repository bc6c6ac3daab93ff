import DatapathCore
import Synchronization

/// Cluster-pool IPAM, as Cilium's agent does it: hands out pod addresses from the node's pod CIDR (given, or
/// derived from the cluster pool and the node's index), owned by `namespace/pod`, recorded in a crash-safe
/// ledger so that no address is ever handed out twice or lost across restarts.
///
/// Linked plugins are enabled by default; with no pod CIDR configured this one stays idle and its routes answer
/// 503 saying what to configure, so an agent that does not do IPAM pays nothing for it.
public final class IPAMClusterPoolPlugin: DatapathPlugin {
    public let name = "ipam"

    private let service: Mutex<IPAM>
    private let context = Mutex<PluginContext?>(nil)
    private let compactAfter: Int

    /// `compactAfter`: ledger records between snapshots.
    public init(compactAfter: Int = 1024) {
        self.compactAfter = compactAfter
        service = Mutex(IPAM(config: IPAMConfig(), compactAfter: compactAfter))
    }

    var current: IPAM { service.withLock { $0 } }

    public var routes: [Route] {
        IPAMRoutes(service: { [self] in current }).routes
    }

    public var periodicJobs: [PeriodicJob] {
        [
            PeriodicJob(name: "expire", interval: { .seconds(1) }) { [self] in
                for allocation in current.expire() {
                    log { $0.logger.info("allocation expired unclaimed", metadata: ["ip": "\(allocation.address)"]) }
                }
            }
        ]
    }

    public func configure(_ options: JSON) throws {
        let config = try IPAMConfig(parsing: options)
        let ipam = IPAM(config: config, compactAfter: compactAfter) { [weak self] message in
            self?.log { $0.logger.warning("\(message)") }
        }
        service.withLock { $0 = ipam }
    }

    /// The ledger is loaded here, before any route serves; `start` loads it when the agent had no state to restore
    /// (the ledger is the truth either way).
    public func restore(_ context: PluginContext) throws {
        try load(context)
    }

    public func start(_ context: PluginContext) throws {
        self.context.withLock { $0 = context }
        let ipam = current
        guard ipam.config.isConfigured else {
            context.logger.info("IPAM is idle: no pod CIDR configured")
            return
        }
        do {
            try load(context)
            try ipam.syncEndpoints(try Self.endpointAddresses(context.datapath))
        } catch {
            ipam.fail("\(error)")
            throw error
        }
        let families = ipam.config.families.map { "\($0.name) \(ipam.config.family($0)!.podCIDR)" }
        context.logger.info("IPAM ready", metadata: ["pod-cidrs": "\(families.joined(separator: ", "))"])
    }

    private func load(_ context: PluginContext) throws {
        let ipam = current
        guard ipam.config.isConfigured else { return }
        do {
            try ipam.load(directory: context.stateDirectory)
        } catch {
            ipam.fail("\(error)")
            throw error
        }
    }

    public func stop() {
        current.stop()
    }

    public func handle(_ event: DatapathEvent) {
        current.handle(event)
    }

    public func status() -> JSON { current.status() }

    public func metrics() -> [MetricSample] { current.metrics() }

    /// Endpoint id → addresses, from the datapath's endpoint table: what exists even if the agent restarted.
    static func endpointAddresses(_ datapath: Datapath) throws -> [UInt32: [IPAddress]] {
        let map: TypedMap<UInt32, na_endpoint_info> = try datapath.typedMap("na_endpoints")
        var result: [UInt32: [IPAddress]] = [:]
        for (_, info) in try map.entries() {
            var addresses: [IPAddress] = []
            if info.flags & UInt32(NA_EP_HAS_IPV4) != 0 {
                addresses.append(IPAddress(family: .ipv4, bytes: tupleBytes(info.ipv4)))
            }
            if info.flags & UInt32(NA_EP_HAS_IPV6) != 0 {
                addresses.append(IPAddress(family: .ipv6, bytes: tupleBytes(info.ipv6)))
            }
            result[info.ep_id, default: []].append(contentsOf: addresses)
        }
        return result
    }

    private func log(_ body: (PluginContext) -> Void) {
        if let context = context.withLock({ $0 }) { body(context) }
    }
}
