import AgentAPI

/// One side of a traced flow.
public struct TracePeer: Sendable, Equatable {
    public var identity: UInt32
    public var labels: LabelSet
    /// True for an endpoint on this node, whose policy this agent enforces; false for anything else (world,
    /// another node's pod), whose side of the flow is not decided here.
    public var isLocalEndpoint: Bool

    public init(identity: UInt32, labels: LabelSet, isLocalEndpoint: Bool = true) {
        self.identity = identity
        self.labels = labels
        self.isLocalEndpoint = isLocalEndpoint
    }
}

/// The verdict of one direction: the source's egress or the destination's ingress.
public struct DirectionTrace: Sendable, Equatable {
    public var direction: Direction
    /// False when the endpoint is not local, or the direction is not enforced for it.
    public var enforced: Bool
    public var decision: PolicyDecision
    /// Names of the rules that decided; empty for default deny and unenforced directions.
    public var rules: [String]
    public var reason: String

    public var json: JSON {
        [
            "verdict": .string(decision.verdict.rawValue), "reason": .string(reason), "enforced": .bool(enforced),
            "rules": .array(rules.map(JSON.string)),
        ]
    }
}

/// Whether a new flow from `source` to `destination` passes, and why.
public struct TraceResult: Sendable, Equatable {
    public var verdict: PolicyDecision.Verdict
    public var reason: String
    public var egress: DirectionTrace
    public var ingress: DirectionTrace
    /// When the destination's ingress allows the flow to a TCP port with HTTP rules: those rules, and the verdict
    /// on the traced request if there is one.
    public var http: HTTPTrace?

    /// `{"verdict", "reason", "egress": {...}, "ingress": {...}, "http": {...}}`.
    public var json: JSON {
        var object: [String: JSON] = [
            "verdict": .string(verdict.rawValue), "reason": .string(reason), "egress": egress.json,
            "ingress": ingress.json,
        ]
        if let http { object["http"] = http.json }
        return .object(object)
    }
}

extension PolicyRepository {
    /// Traces a new flow as the datapath would decide it: the source's egress policy toward the destination's
    /// identity, then the destination's ingress policy toward the source's; both must allow. `identities` are the
    /// known identities for evaluating peer selectors (the two peers are added when missing); `services` the
    /// identities of the backends of the services `toServices` names. To a TCP port with HTTP rules, `request` is
    /// decided too: the flow passes only if the request does.
    public func trace(
        from source: TracePeer, to destination: TracePeer, proto: UInt8, dport: UInt16, identities: [Identity],
        services: [ServiceReference: [UInt32]] = [:], mode: EnforcementMode, request: HTTPRequestHead? = nil
    ) -> TraceResult {
        var known = identities
        for peer in [source, destination] where !known.contains(where: { $0.id == peer.identity }) {
            known.append(Identity(id: peer.identity, labels: peer.labels))
        }
        let flow = "\(IPProtocol.name(of: proto))/\(dport)"
        let peers = PolicyPeers(known, services: services)
        let egress = traceDirection(
            .egress, endpoint: source, peer: destination, proto: proto, port: dport, peers: peers, mode: mode,
            flow: flow)
        let ingress = traceDirection(
            .ingress, endpoint: destination, peer: source, proto: proto, port: dport, peers: peers, mode: mode,
            flow: flow)
        var http: HTTPTrace?
        if proto == 6, destination.isLocalEndpoint, ingress.decision.verdict == .allowed {
            http = HTTPTrace.trace(
                policy: resolve(endpoint: destination.labels, peers: peers, mode: mode), source: source.identity,
                port: dport, request: request, ruleName: ruleName)
        }
        if egress.decision.verdict == .denied {
            return TraceResult(
                verdict: .denied, reason: "egress of the source: \(egress.reason)", egress: egress,
                ingress: ingress, http: http)
        }
        if ingress.decision.verdict == .denied {
            return TraceResult(
                verdict: .denied, reason: "ingress of the destination: \(ingress.reason)",
                egress: egress, ingress: ingress)
        }
        if let http, http.decision?.allowed == false {
            return TraceResult(
                verdict: .denied, reason: "HTTP policy of the destination: \(http.reason)", egress: egress,
                ingress: ingress, http: http)
        }
        var reason = "egress: \(egress.reason); ingress: \(ingress.reason)"
        if let http { reason += "; HTTP: \(http.reason)" }
        return TraceResult(verdict: .allowed, reason: reason, egress: egress, ingress: ingress, http: http)
    }

    private func traceDirection(
        _ direction: Direction, endpoint: TracePeer, peer: TracePeer, proto: UInt8, port: UInt16,
        peers: PolicyPeers, mode: EnforcementMode, flow: String
    ) -> DirectionTrace {
        let role = direction == .egress ? "source" : "destination"
        guard endpoint.isLocalEndpoint else {
            return DirectionTrace(
                direction: direction, enforced: false,
                decision: PolicyDecision(verdict: .allowed, reason: .notEnforced), rules: [],
                reason: "the \(role) is not a local endpoint: its \(direction) is not enforced here")
        }
        let policy = resolve(endpoint: endpoint.labels, peers: peers, mode: mode)
        let decision = policy.decide(identity: peer.identity, direction: direction, proto: proto, port: port)
        let rules = (decision.entry?.ruleIDs ?? []).map { ruleName($0) ?? "rule \($0)" }
        let reason: String
        switch decision.reason {
        case .notEnforced:
            reason = "\(direction) policy is not enforced for the \(role)"
        case .allowRule where rules.isEmpty:
            reason = "allowed: only rules with enableDefaultDeny false select the \(role), so all not denied passes"
        case .allowRule:
            reason = "allowed by \(rules.joined(separator: ", "))"
        case .denyRule:
            reason = "denied by \(rules.joined(separator: ", "))"
        case .noRuleAllows:
            reason =
                "no rule allows \(direction) \(direction == .egress ? "to" : "from") identity \(peer.identity) on "
                + "\(flow) (default deny)"
        }
        return DirectionTrace(
            direction: direction, enforced: policy.isEnforced(direction), decision: decision, rules: rules,
            reason: reason)
    }
}
