import AgentAPI
import DatapathCore
import FoundationEssentials

/// The options of the NAT plugin (`plugins.nat.*` in the agent config).
///
/// Without `interface` the plugin stays idle: nothing is attached and the datapath translates nothing.
public struct NATOptions: Sendable, Equatable {
    /// The node's external interface (in the agent's network namespace) whose traffic is masqueraded.
    public var interface: String?
    /// The address masqueraded flows leave with; nil takes the interface's first IPv4 address at start.
    public var address: IPAddress?
    /// Source ports (ICMP echo ids) translated flows get.
    public var portRange: ClosedRange<UInt16> = 32768...65535
    /// Pod and cluster prefixes: sources inside are masqueraded, destinations inside are not.
    public var clusterCIDRs: [IPPrefix] = []
    /// Entries of na_nat (two per mapping); nil keeps the datapath's default.
    public var maxEntries: UInt32?
    /// Pause between garbage collection sweeps of na_nat.
    public var gcInterval: Duration = .seconds(30)

    public init() {}

    /// Option names as the config spells them.
    public static let optionNames = [
        "address", "cluster-cidrs", "gc-interval", "interface", "max-entries", "port-range",
    ]

    /// Parses and validates an options object; errors name the offending field under `fieldPrefix`.
    public static func parse(_ options: JSON, fieldPrefix: String = "plugins.nat") throws -> NATOptions {
        let object = try options.requireObject(fieldPrefix)
        func field(_ name: String) -> String { "\(fieldPrefix).\(name)" }
        try KnownKeys.check(object.keys, known: optionNames, prefix: fieldPrefix, kind: "option")
        var result = NATOptions()
        if let value = object["interface"] {
            // IFNAMSIZ is 16 bytes with the terminating NUL.
            guard let name = value.stringValue, !name.isEmpty, name.utf8.count <= 15, !name.contains("/") else {
                throw AgentError.invalidField(
                    field("interface"), "expected an interface name of 1 to 15 characters, got \(value.serialized())")
            }
            result.interface = name
        }
        if let value = object["address"] {
            guard let text = value.stringValue, let address = IPAddress(text), address.family == .ipv4 else {
                throw AgentError.invalidField(
                    field("address"),
                    "expected an IPv4 address (masquerading is IPv4 only), got \(value.serialized())")
            }
            result.address = address
        }
        if let value = object["port-range"] {
            result.portRange = try parsePortRange(value, field: field("port-range"))
        }
        if let value = object["cluster-cidrs"] {
            result.clusterCIDRs = try parsePrefixes(value, field: field("cluster-cidrs"))
        }
        if let value = object["max-entries"] {
            guard let count = value.intValue, (2...16_777_216).contains(count) else {
                throw AgentError.invalidField(
                    field("max-entries"), "expected an integer from 2 to 16777216, got \(value.serialized())")
            }
            result.maxEntries = UInt32(count)
        }
        if let value = object["gc-interval"] {
            result.gcInterval = .seconds(
                try ConfigDuration.seconds(value, field: field("gc-interval"), range: 1...86400))
        }
        if result.interface != nil && result.clusterCIDRs.isEmpty {
            throw AgentError.invalidField(
                field("cluster-cidrs"), "required with interface: without cluster prefixes nothing is masqueraded")
        }
        return result
    }

    /// "32768-65535" (or one port, "40000"), first ≤ last, ports 1–65535.
    static func parsePortRange(_ value: JSON, field: String) throws -> ClosedRange<UInt16> {
        let problem = AgentError.invalidField(
            field, "expected \"FIRST-LAST\" with 1 ≤ FIRST ≤ LAST ≤ 65535, got \(value.serialized())")
        guard let text = value.stringValue else { throw problem }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map {
            $0.trimmedWhitespace
        }
        guard parts.count == 1 || parts.count == 2, let first = UInt16(parts[0]),
            let last = UInt16(parts[parts.count - 1]),
            first >= 1, first <= last
        else { throw problem }
        return first...last
    }

    static func parsePrefixes(_ value: JSON, field: String) throws -> [IPPrefix] {
        guard let items = value.arrayValue else {
            throw AgentError.invalidField(field, "expected a list of IPv4 prefixes, got \(value.serialized())")
        }
        return try items.enumerated().map { index, item in
            guard let text = item.stringValue, let prefix = IPPrefix(text), prefix.address.family == .ipv4 else {
                throw AgentError.invalidField(
                    "\(field)[\(index)]", "expected an IPv4 prefix like \"10.244.0.0/16\", got \(item.serialized())")
            }
            return prefix
        }
    }
}
