import DatapathCore
import Logging
import Synchronization

/// The agent's observability parts: the recent-flow store fed by the datapath's flow events, API request metrics,
/// and the optional TCP metrics listener. Owned by `NodeAgent`; started once the agent is set up.
final class Observability: Sendable {
    let flows: FlowStore
    let apiMetrics = APIMetrics()
    private let metricsAddress: MetricsListener.Address?
    private let running = Mutex<(reader: FlowReader?, listener: MetricsListener?)>((nil, nil))
    private let logger = Logger(label: "observability")

    init(config: AgentConfig) throws {
        flows = FlowStore(capacity: config.flowBufferSize)
        metricsAddress = try config.metricsAddress.map { try MetricsListener.Address(parsing: $0) }
    }

    /// Starts reading flow events and, when configured, the metrics listener. A datapath without the ring buffer
    /// only costs flow visibility (logged); a metrics address that cannot be bound fails the start.
    func start(agent: NodeAgent) throws {
        var reader: FlowReader?
        do {
            let last = Mutex<FlowContext?>(nil)
            let created = try FlowReader(
                datapath: agent.datapath, store: flows,
                context: { [weak agent] in
                    guard let agent else { return nil }
                    let context = FlowContext.snapshot(of: agent, reusing: last.withLock { $0 })
                    last.withLock { $0 = context }
                    return context
                },
                refused: { [weak agent] flows in
                    guard let agent, agent.l7 != nil else { return }
                    agent.deniedHTTPConnections.closeLater(flows)
                })
            try created.start()
            reader = created
        } catch {
            logger.error("flow events unavailable", metadata: ["error": "\(error)"])
        }
        var listener: MetricsListener?
        if let metricsAddress {
            let created = MetricsListener(address: metricsAddress, logger: logger) { [weak agent] in
                agent?.metricsText() ?? ""
            }
            do {
                try created.start()
            } catch {
                reader?.stop()
                throw error
            }
            listener = created
        }
        running.withLock { $0 = (reader, listener) }
    }

    /// Stops the reader and the listener and ends every flow follower.
    func stop() {
        let (reader, listener) = running.withLock { running in
            defer { running = (nil, nil) }
            return running
        }
        listener?.stop()
        reader?.stop()
        flows.close()
    }

    var malformedRecords: UInt64 { running.withLock { $0.reader?.malformedRecords ?? 0 } }
    var selfTestEvents: UInt64 { running.withLock { $0.reader?.selfTestEvents ?? 0 } }

    /// `routes` with request metrics recorded.
    func instrument(_ routes: [Route]) -> [Route] { apiMetrics.instrument(routes) }
}

extension NodeAgent {
    /// `GET /v1/flows` and `GET /v1/metrics`.
    var observabilityRoutes: [Route] {
        FlowRoutes(store: observability.flows).routes + MetricsRoute(agent: self).routes
    }
}
