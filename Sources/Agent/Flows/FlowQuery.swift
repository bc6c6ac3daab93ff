import DatapathCore

/// The query parameters of `GET /v1/flows`: a filter, how many recent flows, and whether to follow.
public struct FlowQuery: Sendable, Equatable {
    public static let defaultLast = 100
    public static let maxLast = 1_000_000

    public var filter = FlowFilter()
    /// How many of the most recent matching flows to return; for a follower, nil means "only new flows".
    public var last: Int?
    public var follow = false

    public static let parameters: [String] = [
        "verdict", "from-endpoint", "to-endpoint", "from-pod", "to-pod", "pod", "label", "ip", "from-ip", "to-ip",
        "port", "protocol", "reason", "since", "last", "follow", "type", "http-method", "http-path",
    ]

    public init(filter: FlowFilter = FlowFilter(), last: Int? = nil, follow: Bool = false) {
        self.filter = filter
        self.last = last
        self.follow = follow
    }

    /// Parses query parameters. `reasons` are the verdict reasons by code and name, for `reason=`. Every problem
    /// is a 400 naming the parameter, unknown parameters included (a misspelt filter must not silently match all).
    public init(query: [String: String], reasons: [UInt16: String]) throws(AgentError) {
        try KnownKeys.check(query.keys, known: FlowQuery.parameters, kind: "parameter")
        var filter = FlowFilter()
        if let text = query["verdict"] {
            switch text.uppercased() {
            case "FORWARDED", "ALLOWED": filter.verdict = .forwarded
            case "DROPPED", "DENIED": filter.verdict = .dropped
            default: throw .invalidField("verdict", "expected FORWARDED, DROPPED or ALLOWED, got \"\(text)\"")
            }
        }
        if let text = query["type"] {
            guard let type = FlowFilter.FlowType(rawValue: text.lowercased()) else {
                throw .invalidField("type", "expected l7 or l3-l4, got \"\(text)\"")
            }
            filter.type = type
        }
        if let text = query["http-method"] {
            guard !text.isEmpty, text.allSatisfy({ $0.isLetter && $0.isASCII }) else {
                throw .invalidField("http-method", "expected an HTTP method such as GET, got \"\(text)\"")
            }
            filter.httpMethod = text
        }
        if let text = query["http-path"] {
            do {
                filter.httpPath = try FlowFilter.HTTPPathMatch(text)
            } catch {
                throw .invalidField("http-path", "\(text): \(error.message)")
            }
        }
        filter.fromEndpoint = try Self.endpoint(query, "from-endpoint")
        filter.toEndpoint = try Self.endpoint(query, "to-endpoint")
        filter.fromPod = try Self.pod(query, "from-pod")
        filter.toPod = try Self.pod(query, "to-pod")
        filter.pod = try Self.pod(query, "pod")
        if let text = query["label"] {
            let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            filter.labels = try parts.map { part throws(AgentError) in
                guard let match = FlowFilter.LabelMatch(parsing: part) else {
                    throw .invalidField("label", "expected labels like k8s:app=frontend, got \"\(part)\"")
                }
                return match
            }
        }
        filter.ip = try Self.address(query, "ip")
        filter.fromIP = try Self.address(query, "from-ip")
        filter.toIP = try Self.address(query, "to-ip")
        if let text = query["port"] {
            guard let port = UInt16(text) else {
                throw .invalidField("port", "expected a port 0-65535, got \"\(text)\"")
            }
            filter.port = port
        }
        if let text = query["protocol"] {
            if let number = IPProtocol.number(of: text) {
                filter.proto = number
            } else {
                throw .invalidField(
                    "protocol", "expected TCP, UDP, ICMP, ICMPv6, SCTP or a number 0-255, got \"\(text)\"")
            }
        }
        if let text = query["reason"] {
            if let code = UInt16(text) {
                filter.reasonCode = code
            } else if let code = reasons.first(where: { $0.value.caseInsensitiveEquals(text) })?.key {
                filter.reasonCode = code
            } else {
                let names = reasons.sorted { $0.key < $1.key }.map { "\"\($0.value)\" (\($0.key))" }
                throw .invalidField("reason", "unknown reason \"\(text)\" (known: \(names.joined(separator: ", ")))")
            }
        }
        if let text = query["since"] {
            guard let time = Self.time(text) else {
                throw .invalidField("since", "expected an RFC 3339 time or unix seconds, got \"\(text)\"")
            }
            filter.since = time
        }
        self.filter = filter
        if let text = query["last"] {
            guard let n = Int(text), (1...Self.maxLast).contains(n) else {
                throw .invalidField("last", "expected a number of flows 1-\(Self.maxLast), got \"\(text)\"")
            }
            last = n
        }
        if let text = query["follow"] {
            switch text.lowercased() {
            case "", "true", "1", "yes": follow = true
            case "false", "0", "no": follow = false
            default: throw .invalidField("follow", "expected true or false, got \"\(text)\"")
            }
        }
    }

    private static func endpoint(_ query: [String: String], _ name: String) throws(AgentError) -> UInt32? {
        guard let text = query[name] else { return nil }
        guard let id = UInt32(text), (1...65535).contains(id) else {
            throw .invalidField(name, "expected an endpoint id 1-65535, got \"\(text)\"")
        }
        return id
    }

    private static func pod(_ query: [String: String], _ name: String) throws(AgentError) -> String? {
        guard let text = query[name] else { return nil }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw .invalidField(name, "expected namespace/pod, got \"\(text)\"")
        }
        return text
    }

    private static func address(_ query: [String: String], _ name: String) throws(AgentError) -> IPAddress? {
        guard let text = query[name] else { return nil }
        guard let address = IPAddress(text) else {
            throw .invalidField(name, "expected an IPv4 or IPv6 address, got \"\(text)\"")
        }
        return address
    }

    /// RFC 3339, or unix seconds with an optional fraction.
    static func time(_ text: String) -> Int64? {
        if let nanos = RFC3339.parse(text) { return nanos }
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let seconds = Int64(parts[0]), !parts[0].hasPrefix("+") else { return nil }
        var nanos: Int64 = 0
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit) else { return nil }
            let padded = String((digits + "000000000").prefix(9))
            nanos = Int64(padded)!
        }
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return nil }
        return product + (seconds < 0 ? -nanos : nanos)
    }
}

extension String {
    func caseInsensitiveEquals(_ other: String) -> Bool { lowercased() == other.lowercased() }
}
