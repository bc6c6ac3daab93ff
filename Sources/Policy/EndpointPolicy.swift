/// The `policy-enforcement` setting.
public enum EnforcementMode: String, Sendable, CaseIterable {
    /// A direction is default-deny when a rule selecting the endpoint has a section for it.
    case `default`
    /// Every endpoint is default-deny in both directions.
    case always
    /// Nothing is enforced.
    case never
}

/// What the datapath enforces for one endpoint: which directions are default-deny, and the policy map entries.
public struct EndpointPolicy: Sendable, Equatable {
    public var ingressEnforced: Bool
    public var egressEnforced: Bool
    /// Sorted by key (direction, identity, protocol, port, prefix); precedence already resolved (see
    /// `PolicyCompiler`), so the datapath's lookups give the right verdict.
    public var entries: [PolicyEntry]
    /// What the L7 datapath enforces on the endpoint's ports with ingress HTTP rules, by port. The L3/L4 entries
    /// still allow those ports' connections; their requests are decided by these.
    public var http: [HTTPPortPolicy]

    public init(ingressEnforced: Bool, egressEnforced: Bool, entries: [PolicyEntry], http: [HTTPPortPolicy] = []) {
        self.ingressEnforced = ingressEnforced
        self.egressEnforced = egressEnforced
        self.entries = entries
        self.http = http
    }

    public func isEnforced(_ direction: Direction) -> Bool {
        direction == .ingress ? ingressEnforced : egressEnforced
    }

    /// The verdict the datapath reaches for a new flow with peer `identity`: when the direction is not enforced,
    /// allowed; else the longest-prefix entry of the exact identity and of identity 0; a deny from either wins,
    /// else an allow from either, else the default deny.
    public func decide(identity: UInt32, direction: Direction, proto: UInt8, port: UInt16) -> PolicyDecision {
        guard isEnforced(direction) else { return PolicyDecision(verdict: .allowed, reason: .notEnforced) }
        let exact = longestMatch(identity: identity, direction: direction, proto: proto, port: port)
        let wildcard = identity == 0 ? nil : longestMatch(identity: 0, direction: direction, proto: proto, port: port)
        if let deny = [exact, wildcard].compactMap({ $0 }).first(where: \.deny) {
            return PolicyDecision(verdict: .denied, reason: .denyRule, entry: deny)
        }
        if let allow = exact ?? wildcard {
            return PolicyDecision(verdict: .allowed, reason: .allowRule, entry: allow)
        }
        return PolicyDecision(verdict: .denied, reason: .noRuleAllows)
    }

    /// What an LPM lookup of (identity, direction, proto, port) returns: the matching entry with the longest prefix.
    public func longestMatch(identity: UInt32, direction: Direction, proto: UInt8, port: UInt16) -> PolicyEntry? {
        entries.filter { $0.identity == identity && $0.direction == direction && $0.matches(proto: proto, port: port) }
            .max { $0.prefixLength < $1.prefixLength }
    }
}

/// A verdict and why.
public struct PolicyDecision: Sendable, Equatable {
    public enum Verdict: String, Sendable {
        case allowed
        case denied
    }

    public enum Reason: String, Sendable {
        /// The direction is not enforced for the endpoint.
        case notEnforced = "not-enforced"
        /// An allow entry matched.
        case allowRule = "allowed-by-rule"
        /// A deny entry matched.
        case denyRule = "denied-by-rule"
        /// Enforced, and no entry matched: default deny.
        case noRuleAllows = "no-rule-allows"
    }

    public var verdict: Verdict
    public var reason: Reason
    /// The entry that decided, for `allowRule` and `denyRule`.
    public var entry: PolicyEntry?

    public init(verdict: Verdict, reason: Reason, entry: PolicyEntry? = nil) {
        self.verdict = verdict
        self.reason = reason
        self.entry = entry
    }
}
