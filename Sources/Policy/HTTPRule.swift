/// One `toPorts[].rules.http[]` element as written: regexes (with their automata), required headers, and the
/// peers it is narrowed to. A request matches when every constrained field matches and every header is there.
public struct HTTPRule: Hashable, Sendable {
    /// nil: the field is not constrained.
    public var method: HTTPPattern?
    public var path: HTTPPattern?
    public var host: HTTPPattern?
    /// `headers` and `headerMatches`, in that order.
    public var headers: [HTTPHeaderRequirement]
    /// The rule's own `fromEndpoints` (the policy's namespace already added where it applies): the rule applies
    /// only to requests of peers that these select as well as the item. nil: every peer of the item.
    public var endpoints: [LabelSelector]?

    public init(
        method: HTTPPattern? = nil, path: HTTPPattern? = nil, host: HTTPPattern? = nil,
        headers: [HTTPHeaderRequirement] = [], endpoints: [LabelSelector]? = nil
    ) {
        self.method = method
        self.path = path
        self.host = host
        self.headers = headers
        self.endpoints = endpoints
    }

    /// The form the kernel enforces, reported in flows as policy rule `ruleID`.
    public func program(ruleID: UInt32) -> HTTPRuleProgram {
        HTTPRuleProgram(
            ruleID: ruleID, method: method?.automaton, path: path?.automaton, host: host?.automaton,
            headers: headers,
            sources: HTTPRuleProgram.Sources(method: method?.source, path: path?.source, host: host?.source))
    }
}

/// A regex of an HTTP rule and its automaton. Equal when their texts are: the automaton is a function of the text.
public struct HTTPPattern: Hashable, Sendable, CustomStringConvertible {
    public let source: String
    public let automaton: ByteDFA

    public init(_ source: String) throws(HTTPRegexError) {
        self.source = source
        self.automaton = try HTTPRegex.compile(source)
    }

    public static func == (a: HTTPPattern, b: HTTPPattern) -> Bool { a.source == b.source }

    public func hash(into hasher: inout Hasher) { hasher.combine(source) }

    public var description: String { source }
}

extension HTTPHeaderRequirement {
    /// Limits of the kernel's rule record (`NA_L7_MAX_HEADER_REQS`, `NA_L7_HEADER_NAME_MAX`,
    /// `NA_L7_HEADER_VALUE_MAX`).
    public static let maxPerRule = 4
    public static let maxNameLength = 64
    public static let maxValueLength = 128
}
