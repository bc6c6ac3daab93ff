import DatapathCore
import Preflight

extension AgentConfig {
    /// The features this configuration runs: the always-on ones, each linked plugin not disabled under
    /// `plugins`, cluster mode with a `cluster` section, and services unless `services.enabled` is false.
    func preflightFeatures(linked plugins: [String]) -> Set<AgentFeature> {
        AgentFeature.configured(plugins: self.plugins, cluster: cluster != nil, services: services.enabled).filter {
            feature in
            AgentFeature.always.contains(feature) || feature == .cluster || feature == .services
                || plugins.contains(feature.rawValue)
        }
    }

    /// The kernel preflight of this machine for this configuration: what the daemon checks before it starts,
    /// and what `nodeagent preflight` prints.
    public func preflight(linked plugins: [String]) -> PreflightReport {
        PreflightReport.evaluate(LiveKernelProbe(pinRoot: bpfRoot), for: preflightFeatures(linked: plugins))
    }
}

extension NodeAgent {
    /// The preflight `GET /v1/healthz` shows: the one the daemon ran before starting, else one run on first ask
    /// (an agent built without the daemon, as in tests), kept since the probes load programs and make maps.
    func kernelPreflight() -> PreflightReport {
        preflightReport.withLock { report in
            if let report { return report }
            let fresh = config.preflight(linked: registry.names)
            report = fresh
            return fresh
        }
    }

    /// `kernel` of `GET /v1/healthz`, serialized once: the report does not change while the agent runs.
    func kernelHealthBytes() -> [UInt8] {
        preflightHealth.withLock { bytes in
            if let bytes { return bytes }
            let fresh = kernelPreflight().summaryJSON.serializedBytes()
            bytes = fresh
            return fresh
        }
    }
}
