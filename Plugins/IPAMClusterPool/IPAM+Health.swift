import DatapathCore

/// What /v1/healthz and the metrics show of IPAM.
extension IPAM {
    func status() -> JSON {
        state.withLock { state in
            var object: [String: JSON] = ["state": .string(state.phase.name)]
            if case .failed(let reason) = state.phase { object["error"] = .string(reason) }
            guard state.phase == .ready else { return .object(object) }
            for family in config.families {
                let usage = usage(family, state)
                object[family.name] = [
                    "pod-cidr": .string(usage.podCIDR.description), "allocated": .int(Int64(usage.allocated)),
                    "free": .int(Int64(usage.free)),
                ]
            }
            if let ledger = state.ledger {
                object["ledger"] = [
                    "sequence": .int(Int64(ledger.sequence)),
                    "records-since-snapshot": .int(Int64(ledger.recordsInLog)),
                ]
                if let failure = ledger.failure { object["error"] = .string(failure) }
            }
            return .object(object)
        }
    }

    func metrics() -> [MetricSample] {
        state.withLock { state in
            guard state.phase == .ready else { return [] }
            return config.families.flatMap { family -> [MetricSample] in
                let usage = usage(family, state)
                let help = "Addresses of the node's pod CIDR by state"
                return [
                    MetricSample(
                        name: "nodeagent_ipam_addresses", labels: ["family": family.name, "state": "allocated"],
                        value: Double(usage.allocated), help: help),
                    MetricSample(
                        name: "nodeagent_ipam_addresses", labels: ["family": family.name, "state": "free"],
                        value: Double(usage.free), help: help),
                ]
            }
        }
    }
}
