import DatapathCore

/// The options of the conntrack GC (`plugins.conntrack-gc.*` in the agent config), with Cilium's defaults.
///
/// Lifetimes are what the datapath stamps on entries (written into na_config); intervals bound the adaptive
/// sweep pace; the pressure threshold is the estimated fill (fraction of na_ct's max entries) that triggers an
/// early sweep. Durations are whole seconds, given as a number (`300`) or with units (`"5m"`, `"12h"`, `"1h30m"`).
public struct ConntrackGCConfig: Sendable, Equatable {
    /// Established TCP flows, seconds.
    public var tcpEstablished: UInt32 = 8000
    /// TCP before the handshake completes, seconds.
    public var tcpSYN: UInt32 = 60
    /// TCP after FIN or RST, seconds.
    public var tcpClosing: UInt32 = 10
    /// UDP, ICMP and other protocols, seconds.
    public var nonTCP: UInt32 = 60
    /// Shortest sweep interval, seconds.
    public var intervalMin: Int = 10
    /// Longest sweep interval, seconds.
    public var intervalMax: Int = 12 * 3600
    /// Interval before the pace has adapted, seconds.
    public var intervalInitial: Int = 5 * 60
    /// Estimated fill of na_ct (0 < t ≤ 1 of its max entries) at which a sweep runs early.
    public var pressureThreshold: Double = 0.8

    public init() {}

    /// Option names as the config spells them.
    public static let optionNames = [
        "interval-initial", "interval-max", "interval-min", "non-tcp", "pressure-threshold", "tcp-closing",
        "tcp-established", "tcp-syn",
    ]

    /// Lifetimes beyond this could wrap the datapath's 32-bit `now + lifetime`.
    static let maxLifetime = Int64(Int32.max)
    /// 30 days: an interval longer than that is a typo, not a policy.
    static let maxInterval: Int64 = 30 * 86400

    /// Parses and validates an options object; errors name the offending field under `fieldPrefix`.
    public static func parse(_ options: JSON, fieldPrefix: String = "plugins.conntrack-gc") throws
        -> ConntrackGCConfig
    {
        guard let object = options.objectValue else {
            throw AgentError.invalidField(fieldPrefix, "expected an object, got \(options.typeName)")
        }
        if let unknown = object.keys.sorted().first(where: { !optionNames.contains($0) }) {
            throw AgentError.invalidField(
                "\(fieldPrefix).\(unknown)", "unknown option (known: \(optionNames.joined(separator: ", ")))")
        }
        func field(_ name: String) -> String { "\(fieldPrefix).\(name)" }
        func lifetime(_ name: String, _ fallback: UInt32) throws -> UInt32 {
            guard let value = object[name] else { return fallback }
            return UInt32(try seconds(value, field: field(name), range: 1...maxLifetime))
        }
        func interval(_ name: String, _ fallback: Int) throws -> Int {
            guard let value = object[name] else { return fallback }
            return Int(try seconds(value, field: field(name), range: 1...maxInterval))
        }
        var config = ConntrackGCConfig()
        config.tcpEstablished = try lifetime("tcp-established", config.tcpEstablished)
        config.tcpSYN = try lifetime("tcp-syn", config.tcpSYN)
        config.tcpClosing = try lifetime("tcp-closing", config.tcpClosing)
        config.nonTCP = try lifetime("non-tcp", config.nonTCP)
        config.intervalMin = try interval("interval-min", config.intervalMin)
        config.intervalMax = try interval("interval-max", config.intervalMax)
        config.intervalInitial = try interval("interval-initial", config.intervalInitial)
        if let value = object["pressure-threshold"] {
            guard let threshold = value.doubleValue, threshold > 0, threshold <= 1 else {
                throw AgentError.invalidField(
                    field("pressure-threshold"),
                    "expected a fraction of max entries above 0 and at most 1, got \(value.serialized())")
            }
            config.pressureThreshold = threshold
        }
        guard config.intervalMin <= config.intervalMax else {
            throw AgentError.invalidField(
                field("interval-min"),
                "must not exceed interval-max (\(config.intervalMin) s > \(config.intervalMax) s)")
        }
        guard (config.intervalMin...config.intervalMax).contains(config.intervalInitial) else {
            throw AgentError.invalidField(
                field("interval-initial"),
                "must lie between interval-min and interval-max (\(config.intervalMin)–\(config.intervalMax) s), "
                    + "got \(config.intervalInitial) s")
        }
        return config
    }

    /// A duration in whole seconds: an integer, or a string of number-unit pairs with units h, m, s.
    static func seconds(_ value: JSON, field: String, range: ClosedRange<Int64>) throws -> Int64 {
        let total: Int64?
        switch value {
        case .string(let text): total = parseDuration(text)
        default: total = value.intValue
        }
        guard let total else {
            throw AgentError.invalidField(
                field,
                "expected seconds as an integer or a duration like \"90s\", \"5m\", \"12h\", got \(value.serialized())")
        }
        guard range.contains(total) else {
            throw AgentError.invalidField(
                field, "must be between \(range.lowerBound) and \(range.upperBound) seconds, got \(total)")
        }
        return total
    }

    /// "1h30m" → 5400, "45" → 45; nil when malformed or absurdly large.
    static func parseDuration(_ text: String) -> Int64? {
        if let plain = Int64(text) { return plain }
        var total: Int64 = 0
        var digits = ""
        for character in text {
            if character.isASCII, character.isNumber {
                digits.append(character)
                continue
            }
            let unit: Int64
            switch character {
            case "h": unit = 3600
            case "m": unit = 60
            case "s": unit = 1
            default: return nil
            }
            guard let number = Int64(digits), number <= Int64(Int32.max) else { return nil }
            total += number * unit
            digits = ""
        }
        return digits.isEmpty && !text.isEmpty ? total : nil
    }
}
