import AgentAPI

/// A service as the API takes it (Cilium's ServiceSpec): the frontend and backends the datapath balances, plus
/// what only people and tools read (type, name, namespace, scope). Parsed in `ServiceSpec+JSON.swift`.
struct ServiceSpec: Sendable, Equatable {
    /// Cilium's frontend scopes. The load balancer keys a service on address, port and protocol only, so two
    /// services differing only in scope would share a frontend: the registry refuses that as a clash.
    enum Scope: String, Sendable, CaseIterable {
        case external
        case `internal`
    }

    /// The Kubernetes service types the API accepts, spelt as Cilium's `flags.type`.
    enum Kind: String, Sendable, CaseIterable {
        case clusterIP = "ClusterIP"
        case nodePort = "NodePort"
        case externalIPs = "ExternalIPs"
        case loadBalancer = "LoadBalancer"
    }

    /// Kubernetes' `sessionAffinity`.
    enum Affinity: String, Sendable, CaseIterable {
        /// Not `none`, which reads as `Optional.none` wherever an affinity is optional.
        case noAffinity = "None"
        case clientIP = "ClientIP"
    }

    /// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours) and its upper bound (a day).
    static let defaultAffinityTimeout: UInt32 = 10800
    static let maxAffinityTimeout: UInt32 = 86400

    var id: UInt32
    var frontend: ServiceFrontend
    var scope: Scope = .external
    var backends: [ServiceBackend]
    var kind: Kind = .clusterIP
    var name: String?
    var namespace: String?
    var affinity: Affinity = .noAffinity
    /// Seconds; only meaningful with `affinity == .clientIP`.
    var affinityTimeout: UInt32 = ServiceSpec.defaultAffinityTimeout

    /// What the datapath programs for this spec.
    var loadBalanced: LoadBalancedService {
        LoadBalancedService(
            id: id, frontend: frontend, backends: backends,
            affinityTimeout: affinity == .clientIP ? affinityTimeout : nil, external: kind != .clusterIP)
    }
}

/// Whether the datapath holds a service as its spec says, and why not when it does not.
struct ServiceStatus: Sendable, Equatable {
    var realized: Bool
    var message: String?

    static let realizedNow = ServiceStatus(realized: true, message: nil)

    /// No `ServiceDatapath` is wired into this agent: services are kept, answered and saved, never programmed.
    static let noLoadBalancer = ServiceStatus(
        realized: false, message: "the load balancer is not available in this agent; the service is stored only")

    static func failed(_ error: AgentError) -> ServiceStatus {
        ServiceStatus(realized: false, message: error.message)
    }
}

/// A service the agent holds: the spec it was given and what became of it in the datapath.
struct Service: Sendable, Equatable {
    var spec: ServiceSpec
    var status: ServiceStatus

    /// `{"spec": ServiceSpec, "status": {"realized": bool, "message"?: string}}`.
    var json: JSON {
        [
            "spec": spec.json,
            "status": .object(dropNils: [
                ("realized", .bool(status.realized)), ("message", status.message.map(JSON.string)),
            ]),
        ]
    }
}
