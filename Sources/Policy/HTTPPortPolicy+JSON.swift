import AgentAPI

extension HTTPPortPolicy {
    /// The port's HTTP policy as the API shows it: `{"port", "rules": [...], "peers": [...]}`, rule numbers named
    /// by `ruleName` (`web-tier/p ingress[0]`). Peers list each identity with `unrestricted` or its rule indexes.
    public func json(ruleName: (UInt32) -> String?) -> JSON {
        let peerRows: [JSON] = peers.keys.sorted().map { identity in
            var row: [String: JSON] = ["identity": .int(Int64(identity))]
            switch peers[identity]! {
            case .unrestricted:
                row["access"] = "unrestricted"
            case .rules(let mask):
                row["access"] = "rules"
                row["rules"] = .array(Self.indexes(mask).map { .int(Int64($0)) })
            }
            return .object(row)
        }
        return [
            "port": .int(Int64(port)), "protocol": "TCP",
            "rules": .array(rules.enumerated().map { $1.json(index: $0, ruleName: ruleName) }),
            "peers": .array(peerRows),
        ]
    }
}

extension HTTPRuleProgram {
    /// `{"index", "rule-id", "rule", "method", "path", "host", "headers": ["name", "name: value"]}`, the regexes as
    /// written; an absent field is not constrained.
    public func json(index: Int, ruleName: (UInt32) -> String?) -> JSON {
        var object: [String: JSON] = [
            "index": .int(Int64(index)), "rule-id": .int(Int64(ruleID)),
            "headers": .array(headers.map { .string($0.description) }),
        ]
        if let name = ruleName(ruleID) { object["rule"] = .string(name) }
        if let method = sources.method { object["method"] = .string(method) }
        if let path = sources.path { object["path"] = .string(path) }
        if let host = sources.host { object["host"] = .string(host) }
        return .object(object)
    }

    /// `method=GET path=/api/.* host=... header=x-team`, for reasons and tables; `any request` when unconstrained.
    public var summary: String {
        var parts: [String] = []
        if let method = sources.method { parts.append("method=\(method)") }
        if let path = sources.path { parts.append("path=\(path)") }
        if let host = sources.host { parts.append("host=\(host)") }
        parts += headers.map { "header=\($0)" }
        return parts.isEmpty ? "any request" : parts.joined(separator: " ")
    }
}

extension HTTPHeaderRequirement: CustomStringConvertible {
    /// `name` or `name: value`, as `headers` writes them.
    public var description: String { value.map { "\(name): \($0)" } ?? name }
}
