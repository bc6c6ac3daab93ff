import DatapathCore
import Policy

/// Which flows a query or a follower wants; every condition given must hold (an empty filter takes every flow).
public struct FlowFilter: Sendable, Equatable {
    public var verdict: Flow.Verdict?
    public var fromEndpoint: UInt32?
    public var toEndpoint: UInt32?
    /// `namespace/name` of the source pod, the destination pod, or either.
    public var fromPod: String?
    public var toPod: String?
    public var pod: String?
    /// Labels that one side (source or destination) must carry all of.
    public var labels: [LabelMatch] = []
    public var ip: IPAddress?
    public var fromIP: IPAddress?
    public var toIP: IPAddress?
    /// Source or destination port.
    public var port: UInt16?
    public var proto: UInt8?
    public var reasonCode: UInt16?
    /// Only flows at or after this wall-clock time (nanoseconds since the epoch).
    public var since: Int64?
    /// Only HTTP request decisions (`l7`) or only connection verdicts (`l3-l4`).
    public var type: FlowType?
    /// HTTP request decisions with this method (compared case-insensitively).
    public var httpMethod: String?
    /// HTTP request decisions whose request-target the regex matches whole (the syntax of policy `path` rules).
    public var httpPath: HTTPPathMatch?

    /// `type=` of a flow query, as Hubble's `--type l7`.
    public enum FlowType: String, Sendable, Equatable, CaseIterable {
        case l7
        case l34 = "l3-l4"
    }

    /// A path regex, compiled once for the query.
    public struct HTTPPathMatch: Sendable, Equatable {
        public var pattern: String
        var automaton: ByteDFA

        public init(_ pattern: String) throws(HTTPRegexError) {
            self.pattern = pattern
            automaton = try HTTPRegex.compile(pattern)
        }

        public func matches(_ path: String) -> Bool { automaton.matches(path.utf8) }
    }

    public init() {}

    /// A label condition, `source:key=value`; without a source (`app=x`) any source matches.
    public struct LabelMatch: Sendable, Equatable {
        public var source: String?
        public var key: String
        public var value: String

        public init(source: String?, key: String, value: String) {
            self.source = source
            self.key = key
            self.value = value
        }

        /// Parses `k8s:app=frontend`, `app=frontend`, `reserved:world`; the source is the text before the first
        /// colon when that colon comes before any `=` (as labels are written everywhere else).
        public init?(parsing text: String) {
            var keyPart = Substring(text)
            var value = Substring("")
            if let eq = text.firstIndex(of: "=") {
                keyPart = text[..<eq]
                value = text[text.index(after: eq)...]
            }
            var source: Substring? = nil
            if let colon = keyPart.firstIndex(of: ":") {
                source = keyPart[..<colon]
                keyPart = keyPart[keyPart.index(after: colon)...]
            }
            guard !keyPart.isEmpty, source.map({ !$0.isEmpty }) ?? true,
                !text.unicodeScalars.contains(where: { $0.properties.isWhitespace })
            else { return nil }
            self.init(source: source.map(String.init), key: String(keyPart), value: String(value))
        }

        /// Whether a label (`source:key=value` text) satisfies the condition; `unspec` or `any` means any source.
        public func matches(_ label: String) -> Bool {
            guard let other = LabelMatch(parsing: label), other.key == key, other.value == value else { return false }
            guard let source, source != "any", source != "unspec" else { return true }
            return other.source == source
        }
    }

    public func matches(_ flow: Flow) -> Bool {
        if let verdict, flow.verdict != verdict { return false }
        if let type, (type == .l7) != (flow.l7 != nil) { return false }
        if let httpMethod, flow.l7.map({ $0.method.caseInsensitiveEquals(httpMethod) }) != true { return false }
        if let httpPath, flow.l7.map({ httpPath.matches($0.url) }) != true { return false }
        if let since, flow.time < since { return false }
        if let reasonCode, flow.reasonCode != reasonCode { return false }
        if let proto, flow.proto != proto { return false }
        if let port, flow.source.port != port && flow.destination.port != port { return false }
        if let fromEndpoint, flow.source.endpoint != fromEndpoint { return false }
        if let toEndpoint, flow.destination.endpoint != toEndpoint { return false }
        if let fromPod, flow.source.pod != fromPod { return false }
        if let toPod, flow.destination.pod != toPod { return false }
        if let pod, flow.source.pod != pod && flow.destination.pod != pod { return false }
        if let fromIP, flow.source.ip != fromIP { return false }
        if let toIP, flow.destination.ip != toIP { return false }
        if let ip, flow.source.ip != ip && flow.destination.ip != ip { return false }
        if !labels.isEmpty {
            let onSide = { (peer: Flow.Peer) in
                self.labels.allSatisfy { want in peer.labels.contains(where: want.matches) }
            }
            if !onSide(flow.source) && !onSide(flow.destination) { return false }
        }
        return true
    }
}
