import AgentAPI

/// The HTTP side of a trace to a port with HTTP rules: the rules that apply to the source, and with a request
/// given, the decision the kernel makes on it.
public struct HTTPTrace: Sendable, Equatable {
    public var port: UInt16
    /// The rules that apply to the source, as `HTTPRuleProgram.json`; nil: an allow without HTTP rules covers it.
    public var rules: [JSON]?
    public var request: HTTPRequestHead?
    public var decision: HTTPDecision?
    public var reason: String

    /// `{"port", "unrestricted", "rules", "request": {...}, "verdict", "reason"}`.
    public var json: JSON {
        var object: [String: JSON] = [
            "port": .int(Int64(port)), "unrestricted": .bool(rules == nil), "rules": .array(rules ?? []),
            "reason": .string(reason),
        ]
        if let request {
            object["request"] = [
                "method": .string(request.method), "path": .string(request.path), "host": .string(request.host),
            ]
        }
        if let decision { object["verdict"] = .string(decision.allowed ? "allowed" : "denied") }
        return .object(object)
    }

    /// For a flow the destination's ingress allows on TCP `port`: nil when the port has no HTTP rules.
    static func trace(
        policy: EndpointPolicy, source: UInt32, port: UInt16, request: HTTPRequestHead?,
        ruleName: (UInt32) -> String?
    ) -> HTTPTrace? {
        guard let http = policy.http.first(where: { $0.port == port }) else { return nil }
        let indexes = http.ruleIndexes(for: source)
        let rules = indexes.map { $0.map { http.rules[$0].json(index: $0, ruleName: ruleName) } }
        guard let request else {
            let reason =
                indexes == nil
                ? "every request passes: an allow rule without HTTP rules covers identity \(source) on TCP/\(port)"
                : "requests are decided by \(indexes!.count) HTTP rule(s); give a request to trace one"
            return HTTPTrace(port: port, rules: rules, request: nil, decision: nil, reason: reason)
        }
        let decision = http.decide(identity: source, request: request)
        let reason: String
        switch decision.reason {
        case .unrestricted:
            reason = "allowed: an allow rule without HTTP rules covers identity \(source) on TCP/\(port)"
        case .ruleMatched:
            let rule = http.rules[decision.rule!]
            let name = ruleName(rule.ruleID) ?? "rule \(rule.ruleID)"
            reason = "allowed by HTTP rule \(decision.rule!) of \(name) (\(rule.summary))"
        case .noRuleMatches:
            reason =
                "denied: none of the \(indexes?.count ?? 0) HTTP rule(s) for identity \(source) on TCP/\(port) "
                + "matches (the kernel answers 403 Forbidden)"
        case .peerNotAllowed:
            reason = "denied: no HTTP rule applies to identity \(source) on TCP/\(port) (403 Forbidden)"
        }
        return HTTPTrace(port: port, rules: rules, request: request, decision: decision, reason: reason)
    }
}
