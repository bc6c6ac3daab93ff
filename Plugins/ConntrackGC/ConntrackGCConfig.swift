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
        let object = try options.requireObject(fieldPrefix)
        try KnownKeys.check(object.keys, known: optionNames, prefix: fieldPrefix, kind: "option")
        func field(_ name: String) -> String { "\(fieldPrefix).\(name)" }
        func lifetime(_ name: String, _ fallback: UInt32) throws -> UInt32 {
            guard let value = object[name] else { return fallback }
            return UInt32(try ConfigDuration.seconds(value, field: field(name), range: 1...maxLifetime))
        }
        func interval(_ name: String, _ fallback: Int) throws -> Int {
            guard let value = object[name] else { return fallback }
            return Int(try ConfigDuration.seconds(value, field: field(name), range: 1...maxInterval))
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
}
