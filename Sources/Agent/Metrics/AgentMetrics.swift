import DatapathCore
import Policy

/// Everything `/v1/metrics` reports, gathered at scrape time: datapath verdict counters, API request metrics,
/// agent state, map fill levels, flow-event accounting, and the enabled plugins' own samples.
extension NodeAgent {
    func metricsText() -> String {
        PrometheusText.render(metricSamples())
    }

    func metricSamples() -> [MetricSample] {
        var samples: [MetricSample] = []
        samples.append(
            MetricSample(
                name: "nodeagent_build_info", labels: ["version": Daemon.version], value: 1,
                help: "Always 1; the version label says which agent answers."))
        samples += verdictSamples()
        samples += observability.apiMetrics.samples
        samples += stateSamples()
        samples += mapSamples()
        samples += flowSamples()
        samples += clusterSamples()
        for plugin in registry.enabled { samples += plugin.metrics() }
        return samples
    }

    /// Packets and bytes by verdict reason and direction from `na_metrics`, summed over CPUs. Every known reason
    /// is reported for both directions, zero until it happens, so rates and alerts need no special cases.
    private func verdictSamples() -> [MetricSample] {
        var totals: [VerdictKey: (packets: UInt64, bytes: UInt64)] = [:]
        for (code, _) in FlowReasons.names {
            for direction in ["ingress", "egress"] { totals[VerdictKey(reason: code, direction: direction)] = (0, 0) }
        }
        do {
            let map = try datapath.map("na_metrics")
            try map.forEachBatch { keys, values in
                for (keyBytes, valueBytes) in zip(keys, values) where !MetricsSlot.unused(valueBytes) {
                    let slot = MetricsSlot(key: keyBytes, value: valueBytes, cpus: map.valueCount)
                    let key = VerdictKey(reason: slot.reason, direction: slot.direction)
                    var sum = totals[key] ?? (0, 0)
                    sum.packets &+= slot.packets
                    sum.bytes &+= slot.bytes
                    totals[key] = sum
                }
                return true
            }
        } catch {
            logger.warning("metrics: reading na_metrics failed", metadata: ["error": "\(error)"])
        }
        var samples: [MetricSample] = []
        for (key, total) in totals.sorted(by: { ($0.key.reason, $0.key.direction) < ($1.key.reason, $1.key.direction) })
        {
            if key.reason == UInt16(NA_REASON_FORWARDED.rawValue) {
                samples.append(
                    MetricSample(
                        name: "nodeagent_forwarded_packets_total", labels: ["direction": key.direction],
                        value: Double(total.packets), help: "Packets the datapath forwarded, by direction.",
                        type: "counter"))
                samples.append(
                    MetricSample(
                        name: "nodeagent_forwarded_bytes_total", labels: ["direction": key.direction],
                        value: Double(total.bytes), help: "Bytes the datapath forwarded, by direction.",
                        type: "counter"))
            } else {
                let labels = ["reason": DropReason.name(of: key.reason), "direction": key.direction]
                samples.append(
                    MetricSample(
                        name: "nodeagent_drop_packets_total", labels: labels, value: Double(total.packets),
                        help: "Packets the datapath dropped, by reason and direction.", type: "counter"))
                samples.append(
                    MetricSample(
                        name: "nodeagent_drop_bytes_total", labels: labels, value: Double(total.bytes),
                        help: "Bytes the datapath dropped, by reason and direction.", type: "counter"))
            }
        }
        return samples
    }

    private func stateSamples() -> [MetricSample] {
        // Copies of copy-on-write collections: the lock is held for a few reference counts, the counting is not.
        let (endpoints, identities, policy) = state.withLock { ($0.endpoints, $0.identities, $0.policy) }
        let allocated = identities.identities.filter { !$0.isReserved }.count
        return [
            MetricSample(name: "nodeagent_endpoints", value: Double(endpoints.count), help: "Endpoints managed."),
            MetricSample(
                name: "nodeagent_identities", value: Double(allocated),
                help: "Security identities allocated for label sets (the fixed reserved identities not counted)."),
            MetricSample(
                name: "nodeagent_policies", value: Double(policy.documents.count),
                help: "CiliumNetworkPolicy documents in force."),
            MetricSample(
                name: "nodeagent_policy_revision", value: Double(policy.revision),
                help: "Revision of the policy repository; moves with every policy change."),
        ]
    }

    /// Entries and capacity of every map (the fill level), counted with batch lookups.
    private func mapSamples() -> [MetricSample] {
        var samples: [MetricSample] = []
        for map in datapath.allMaps {
            let labels = ["map": map.name]
            if map.info.type != .ringBuffer {
                do {
                    samples.append(
                        MetricSample(
                            name: "nodeagent_map_entries", labels: labels, value: Double(try map.countEntries()),
                            help: "Entries in each BPF map (arrays count every slot)."))
                } catch {
                    logger.warning(
                        "metrics: counting map entries failed", metadata: ["map": "\(map.name)", "error": "\(error)"])
                }
            }
            samples.append(
                MetricSample(
                    name: "nodeagent_map_capacity", labels: labels, value: Double(map.info.maxEntries),
                    help: "Maximum entries of each BPF map (bytes for ring buffers)."))
        }
        return samples
    }

    private func flowSamples() -> [MetricSample] {
        var samples: [MetricSample] = []
        if let stats = try? datapath.flowEventStats() {
            samples.append(
                MetricSample(
                    name: "nodeagent_flow_events_lost_total", value: Double(stats.lost),
                    help: "Flow events the datapath could not write because the ring buffer was full.",
                    type: "counter"))
            samples.append(
                MetricSample(
                    name: "nodeagent_flow_events_emitted_total", value: Double(stats.emitted),
                    help: "Flow events the datapath wrote into the ring buffer.", type: "counter"))
        }
        let store = observability.flows.stats
        samples += [
            MetricSample(
                name: "nodeagent_flows_received_total", value: Double(store.appended + observability.selfTestEvents),
                help: "Flow events the agent read and decoded (its start-up self-test's too, though not stored).",
                type: "counter"),
            MetricSample(
                name: "nodeagent_flow_buffer_flows", value: Double(store.buffered),
                help: "Flows held in the agent's recent-flow buffer."),
            MetricSample(
                name: "nodeagent_flow_followers", value: Double(store.followers),
                help: "Clients following flows (GET /v1/flows?follow=true)."),
            MetricSample(
                name: "nodeagent_flow_follower_dropped_total", value: Double(store.droppedForFollowers),
                help: "Flows dropped from followers' queues because the follower read too slowly.", type: "counter"),
            MetricSample(
                name: "nodeagent_flow_records_malformed_total", value: Double(observability.malformedRecords),
                help: "Ring buffer records too short to be a flow event.", type: "counter"),
        ]
        return samples
    }
}

private struct VerdictKey: Hashable {
    var reason: UInt16
    var direction: String
}
