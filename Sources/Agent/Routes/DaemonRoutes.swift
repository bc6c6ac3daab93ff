import DatapathCore
import FoundationEssentials
import Logging

/// `GET /v1/healthz` (with `kernel`, the preflight the daemon ran before starting), `GET|PATCH /v1/config`.
struct DaemonRoutes {
    let agent: NodeAgent

    var routes: [Route] {
        [
            .get("/v1/healthz") { _ in
                APIResponse(status: 200, body: agent.healthBody(), contentType: "application/json")
            },
            .get("/v1/config") { _ in .json(agent.runtime.withLock { $0.json }) },
            .patch("/v1/config") { request in .json(try agent.patchConfig(try request.jsonBody())) },
        ]
    }
}

extension NodeAgent {
    /// `health()` serialized, built at most once per second of uptime: probes and status polls in between get the
    /// same bytes, as Cilium's status collector answers from its last collection. A change of endpoints,
    /// identities or policy (the state version) or of the runtime options (`patchConfig`) is shown at once; what
    /// plugins and cluster mode report may lag by up to a second. The kernel part, three quarters of the answer,
    /// is the same for the agent's whole life: it is serialized once and put where a placeholder stands.
    func healthBody() -> [UInt8] {
        let version = state.withLock { $0.version }
        let second = (ContinuousClock.now - startedAt).components.seconds
        if let cached = healthCache.withLock({ $0?.version == version && $0?.second == second ? $0?.body : nil }) {
            return cached
        }
        let placeholder = "na-kernel-health"
        let bytes = health(kernel: .string(placeholder)).serializedBytes()
        let body = bytes.replacingFirst(Array("\"\(placeholder)\"".utf8), with: kernelHealthBytes())
        // Concurrent misses may store out of order: each entry is still a version, a second and what they show.
        healthCache.withLock { $0 = (version, second, body) }
        return body
    }

    /// The answer with `kernel` standing where the kernel part goes.
    func health(kernel: JSON) -> JSON {
        let (endpoints, revision) = state.withLock { ($0.endpoints.count, $0.policy.revision) }
        let options = runtime.withLock { $0 }
        var health: [String: JSON] = [
            "status": "ok", "version": .string(Daemon.version), "kernel": kernel,
            "bpffs": ["root": .string(datapath.root), "mounted": .bool(BPFFS.isBPFFS(datapath.root))],
            "uptime-seconds": .int((ContinuousClock.now - startedAt).components.seconds),
            "endpoints": .int(Int64(endpoints)), "policy-revision": .int(Int64(revision)),
            "plugins": registry.statuses(),
            "datapath": [
                "drop-event-interval": options.dropEventInterval.json,
                "allow-localhost": .string(options.allowLocalhost.rawValue),
                "host-routing": .string(options.hostRouting.rawValue),
            ],
        ]
        if let cluster = clusterHealth() { health["cluster"] = cluster }
        health["services"] = servicesHealth()
        health["l7"] = l7Health()
        return .object(health)
    }

    /// The `services` section and whether the socket load balancer runs: off by configuration, or an agent built
    /// without it, stores services without translating them.
    func servicesHealth() -> JSON {
        var object = config.services.json.objectValue ?? [:]
        object["load-balancer"] = serviceLoadBalancing == nil ? "not running" : "running"
        if let serviceLoadBalancing { object["cgroup-root"] = .string(serviceLoadBalancing.cgroupRoot) }
        object["devices"] = .array(serviceDevices.withLock { $0 }.map { .string($0) })
        return .object(object)
    }

    /// Applies runtime options; the whole patch or nothing. Persisted so a restart keeps them.
    func patchConfig(_ patch: JSON) throws -> JSON {
        let (before, after) = try runtime.withLock { options throws -> (RuntimeOptions, RuntimeOptions) in
            let before = options
            try options.apply(patch: patch)
            return (before, options)
        }
        logLevel.value = Logger.Level(rawValue: after.logLevel.rawValue) ?? .info
        if before.allowedFlowSampling != after.allowedFlowSampling
            || before.dropEventInterval != after.dropEventInterval
            || before.allowLocalhost != after.allowLocalhost || before.hostRouting != after.hostRouting
        {
            try writeDatapathSettings(after)
        }
        try store.write("config", after.json)
        healthCache.withLock { $0 = nil }
        if before.allowLocalhost != after.allowLocalhost {
            try state.withLock { try renewPolicyGenerations(&$0) }
        }
        if before.policyEnforcement != after.policyEnforcement {
            try state.withLock { try regenerateAll(&$0, reason: "policy-enforcement changed") }
        }
        return after.json
    }
}

extension Array where Element == UInt8 {
    /// The bytes with the first occurrence of `pattern` replaced by `replacement` (unchanged without one).
    func replacingFirst(_ pattern: [UInt8], with replacement: [UInt8]) -> [UInt8] {
        guard !pattern.isEmpty, count >= pattern.count else { return self }
        for start in 0...(count - pattern.count) where self[start] == pattern[0] {
            guard self[start..<(start + pattern.count)].elementsEqual(pattern) else { continue }
            return Array(self[..<start]) + replacement + self[(start + pattern.count)...]
        }
        return self
    }
}
