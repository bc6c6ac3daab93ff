/// An HTTP request as the kernel sees its head: what rules are matched against.
public struct HTTPRequestHead: Hashable, Sendable {
    public var method: String
    /// The request-target: path and query.
    public var path: String
    /// The Host header's value; empty when the request has none.
    public var host: String
    /// Name and value of each header line, names as sent.
    public var headers: [(name: String, value: String)]

    public init(method: String, path: String, host: String = "", headers: [(name: String, value: String)] = []) {
        self.method = method
        self.path = path
        self.host = host
        self.headers = headers
    }

    public static func == (a: HTTPRequestHead, b: HTTPRequestHead) -> Bool {
        a.method == b.method && a.path == b.path && a.host == b.host
            && a.headers.map { [$0.name, $0.value] } == b.headers.map { [$0.name, $0.value] }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(method)
        hasher.combine(path)
        hasher.combine(host)
        for header in headers {
            hasher.combine(header.name)
            hasher.combine(header.value)
        }
    }
}

/// The decision on one request, and why.
public struct HTTPDecision: Hashable, Sendable {
    public enum Reason: String, Sendable {
        /// An allow rule without HTTP rules covers the peer on the port.
        case unrestricted
        /// `rule` matched.
        case ruleMatched = "rule-matched"
        /// Rules apply to the peer, none matched.
        case noRuleMatches = "no-rule-matches"
        /// No rule applies to the peer on the port.
        case peerNotAllowed = "peer-not-allowed"
    }

    public var allowed: Bool
    public var reason: Reason
    /// Index into the port's `rules` of the rule that matched.
    public var rule: Int?
}

extension HTTPPortPolicy {
    /// The decision the kernel's verdict program makes on a request from a peer of `identity`: unrestricted in the
    /// peer's entry or identity 0's passes; else the union of both entries' rules, in bit order, first match wins.
    public func decide(identity: UInt32, request: HTTPRequestHead) -> HTTPDecision {
        guard let indexes = ruleIndexes(for: identity) else {
            return HTTPDecision(allowed: true, reason: .unrestricted)
        }
        if indexes.isEmpty { return HTTPDecision(allowed: false, reason: .peerNotAllowed) }
        for index in indexes where rules[index].matches(request) {
            return HTTPDecision(allowed: true, reason: .ruleMatched, rule: index)
        }
        return HTTPDecision(allowed: false, reason: .noRuleMatches)
    }

    /// The indexes of the rules that apply to a peer of `identity` (its entry's and identity 0's, in bit order),
    /// nil when some allow without HTTP rules covers it.
    public func ruleIndexes(for identity: UInt32) -> [Int]? {
        var mask: UInt64 = 0
        for entry in [peers[identity], identity == 0 ? nil : peers[0]].compactMap({ $0 }) {
            switch entry {
            case .unrestricted: return nil
            case .rules(let bits): mask |= bits
            }
        }
        return Self.indexes(mask)
    }

    static func indexes(_ mask: UInt64) -> [Int] {
        (0..<maxRules).filter { mask & (UInt64(1) << UInt64($0)) != 0 }
    }
}

extension HTTPRuleProgram {
    /// Every constrained field's automaton accepts the whole value, and every required header is there (names
    /// case-insensitively; a required value exactly, in one of the lines of that name).
    public func matches(_ request: HTTPRequestHead) -> Bool {
        for (dfa, value) in [(method, request.method), (path, request.path), (host, request.host)] {
            if let dfa, !dfa.matches(value.utf8) { return false }
        }
        return headers.allSatisfy { requirement in
            request.headers.contains { header in
                header.name.lowercased() == requirement.name && (requirement.value.map { $0 == header.value } ?? true)
            }
        }
    }
}
