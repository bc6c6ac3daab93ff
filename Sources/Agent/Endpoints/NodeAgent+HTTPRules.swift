import AgentAPI
import Policy

/// HTTP rules are enforced in the kernel or not accepted: a port whose rules could not be enforced would be open at
/// L3/L4 to every request, which is more than the rule's author allowed.
extension NodeAgent {
    /// Why HTTP rules cannot be enforced now; nil when the kernel's L7 enforcement runs.
    var httpEnforcementUnavailable: String? {
        "this agent does not enforce HTTP rules in the kernel yet"
    }

    /// 501 naming the first HTTP rule of `documents` when the kernel cannot enforce it.
    func checkHTTPRulesEnforceable(_ documents: [PolicyDocument]) throws(AgentError) {
        guard let reason = httpEnforcementUnavailable else { return }
        for document in documents {
            for rule in document.rules where rule.hasHTTPRules {
                throw AgentError.unsupported(
                    "\(document.key): \(rule.path): HTTP rules (rules.http) cannot be enforced: \(reason)")
            }
        }
    }

    /// The same check for one endpoint's compiled policy, for rules that reach it another way (from the cluster).
    func checkHTTPRulesEnforceable(_ http: [HTTPPortPolicy], endpoint: UInt32) throws(AgentError) {
        guard !http.isEmpty, let reason = httpEnforcementUnavailable else { return }
        throw AgentError.unsupported(
            "endpoint \(endpoint): HTTP rules on port \(http[0].port) cannot be enforced: \(reason)")
    }
}

extension PolicyRule {
    /// Whether any ingress item's ports carry `rules.http` (the only section that may).
    public var hasHTTPRules: Bool {
        (ingress ?? []).contains { item in (item.ports ?? []).contains { $0.http != nil } }
    }
}
