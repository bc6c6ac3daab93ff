import DatapathCore

/// The `plugins.ipam` config section.
///
/// For each family, the node's pod CIDR is either given (`pod-cidr-ipv4`) or derived as subnet `node-index` of
/// `cluster-pool-ipv4-mask-size` across `cluster-pool-ipv4-cidr` (see `NodeCIDR`). A family with neither is off;
/// with no family on, the plugin stays idle and its routes answer 503.
struct IPAMConfig: Sendable, Equatable {
    /// What the allocator needs to know about one family.
    struct Family: Sendable, Equatable {
        /// The cluster-wide pool CIDRs; empty when only the pod CIDR was given.
        var clusterPool: [IPPrefix]
        var podCIDR: PodCIDR
        /// The `cidrs` of allocation answers: the cluster pool, else the pod CIDR alone.
        var cidrs: [IPPrefix] { clusterPool.isEmpty ? [podCIDR.prefix] : clusterPool }
    }

    var ipv4: Family?
    var ipv6: Family?
    var nodeIndex: UInt64?
    /// Seconds an allocation made with `expiration: true` lives unless an endpoint claims it (Cilium: 10 minutes).
    var expirationTimeout: Int64 = 600

    var isConfigured: Bool { ipv4 != nil || ipv6 != nil }

    func family(_ family: IPAddress.Family) -> Family? { family == .ipv4 ? ipv4 : ipv6 }

    /// Configured families, IPv4 first.
    var families: [IPAddress.Family] { [IPAddress.Family.ipv4, .ipv6].filter { family($0) != nil } }

    static let defaultMaskSize: [IPAddress.Family: Int] = [.ipv4: 24, .ipv6: 120]
    /// Longest pod CIDR prefix that still leaves an address to hand out; shortest that keeps the host part in
    /// 63 bits.
    static let maskSizeRange: [IPAddress.Family: ClosedRange<Int>] = [.ipv4: 1...30, .ipv6: 65...126]

    static let keys: [String] = [
        "cluster-pool-ipv4-cidr", "cluster-pool-ipv4-mask-size", "pod-cidr-ipv4",
        "cluster-pool-ipv6-cidr", "cluster-pool-ipv6-mask-size", "pod-cidr-ipv6",
        "node-index", "expiration-timeout",
    ]

    init() {}

    /// Parses the section (without `enabled`, which the registry takes). Unknown keys and bad values are
    /// rejected with the field named as `plugins.ipam.<key>`.
    init(parsing options: JSON) throws(AgentError) {
        let object = try options.requireObject("plugins.ipam")
        try KnownKeys.check(object.keys, known: Self.keys, prefix: "plugins.ipam", kind: "option")
        if let value = object["node-index"] {
            guard let index = value.intValue, index >= 0 else {
                throw AgentError.invalidField(
                    Self.field("node-index"), "expected an integer of 0 or more, got \(value.serialized())")
            }
            nodeIndex = UInt64(index)
        }
        if let value = object["expiration-timeout"] {
            expirationTimeout = try ConfigDuration.seconds(
                value, field: Self.field("expiration-timeout"), range: 1...86_400)
        }
        ipv4 = try Self.parseFamily(.ipv4, object, nodeIndex: nodeIndex)
        ipv6 = try Self.parseFamily(.ipv6, object, nodeIndex: nodeIndex)
        if nodeIndex != nil, object["cluster-pool-ipv4-cidr"] == nil, object["cluster-pool-ipv6-cidr"] == nil {
            throw AgentError.invalidField(
                Self.field("node-index"), "has no effect without cluster-pool-ipv4-cidr or cluster-pool-ipv6-cidr")
        }
    }

    private static func parseFamily(
        _ family: IPAddress.Family, _ object: [String: JSON], nodeIndex: UInt64?
    ) throws(AgentError) -> Family? {
        let name = family == .ipv4 ? "ipv4" : "ipv6"
        let poolKey = "cluster-pool-\(name)-cidr"
        let maskKey = "cluster-pool-\(name)-mask-size"
        let podKey = "pod-cidr-\(name)"
        let range = maskSizeRange[family]!

        var pools: [IPPrefix] = []
        if let value = object[poolKey] {
            // A single CIDR is accepted as a one-element list.
            let items = value.arrayValue ?? [value]
            guard !items.isEmpty else { throw AgentError.invalidField(field(poolKey), "expected at least one CIDR") }
            for (index, item) in items.enumerated() {
                let itemField = value.arrayValue == nil ? field(poolKey) : field("\(poolKey)[\(index)]")
                let prefix = try parsePrefix(item, family: family, field: itemField)
                if let other = pools.first(where: { overlaps($0, prefix) }) {
                    throw AgentError.invalidField(itemField, "\(prefix) overlaps \(other)")
                }
                pools.append(prefix)
            }
        }
        var maskSize = defaultMaskSize[family]!
        if let value = object[maskKey] {
            guard !pools.isEmpty else {
                throw AgentError.invalidField(field(maskKey), "has no effect without \(poolKey)")
            }
            guard let size = value.intValue, let int = Int(exactly: size), range.contains(int) else {
                throw AgentError.invalidField(
                    field(maskKey),
                    "expected a prefix length between \(range.lowerBound) and \(range.upperBound), "
                        + "got \(value.serialized())")
            }
            maskSize = int
        }

        let podPrefix: IPPrefix
        if let value = object[podKey] {
            podPrefix = try parsePrefix(value, family: family, field: field(podKey))
            guard range.contains(podPrefix.length) else {
                throw AgentError.invalidField(
                    field(podKey),
                    "prefix length must be between \(range.lowerBound) and \(range.upperBound), "
                        + "got \(podPrefix)")
            }
            let inside = pools.contains { $0.length <= podPrefix.length && $0.contains(podPrefix.address) }
            if !pools.isEmpty, !inside {
                throw AgentError.invalidField(field(podKey), "\(podPrefix) is not inside \(poolKey)")
            }
        } else if !pools.isEmpty {
            guard let nodeIndex else {
                throw AgentError.invalidField(
                    field("node-index"), "required to derive the node's pod CIDR from \(poolKey) (or set \(podKey))")
            }
            if let tooShort = pools.first(where: { $0.length > maskSize }) {
                throw AgentError.invalidField(
                    field(maskKey), "\(maskSize) is shorter than the prefix of pool CIDR \(tooShort)")
            }
            guard let derived = NodeCIDR.derive(pools: pools, maskSize: maskSize, index: nodeIndex) else {
                let total = NodeCIDR.totalSubnets(pools: pools, maskSize: maskSize)
                throw AgentError.invalidField(
                    field("node-index"), "\(nodeIndex) is beyond the \(total) /\(maskSize) subnets of \(poolKey)")
            }
            podPrefix = derived
        } else {
            return nil
        }
        guard let podCIDR = PodCIDR(podPrefix) else {
            throw AgentError.invalidField(field(podKey), "\(podPrefix) leaves no address to hand out")
        }
        return Family(clusterPool: pools, podCIDR: podCIDR)
    }

    private static func parsePrefix(_ value: JSON, family: IPAddress.Family, field: String) throws(AgentError)
        -> IPPrefix
    {
        guard let text = value.stringValue else {
            throw AgentError.invalidField(field, "expected a CIDR string, got \(value.serialized())")
        }
        guard text.contains("/"), let prefix = IPPrefix(text) else {
            let example = family == .ipv4 ? "10.0.0.0/16" : "fd00::/104"
            throw AgentError.invalidField(field, "expected a CIDR such as \(example), got \"\(text)\"")
        }
        guard prefix.address.family == family else {
            throw AgentError.invalidField(field, "\(text) is not an \(family == .ipv4 ? "IPv4" : "IPv6") CIDR")
        }
        guard IPAddress(String(text.prefix { $0 != "/" })) == prefix.address else {
            throw AgentError.invalidField(field, "\(text) has host bits set; did you mean \(prefix)?")
        }
        return prefix
    }

    private static func overlaps(_ a: IPPrefix, _ b: IPPrefix) -> Bool {
        a.length <= b.length ? a.contains(b.address) : b.contains(a.address)
    }

    static func field(_ key: String) -> String { "plugins.ipam.\(key)" }
}

extension IPAddress.Family {
    /// "ipv4" / "ipv6", as the API spells families.
    var name: String { self == .ipv4 ? "ipv4" : "ipv6" }

    init?(name: String) {
        switch name {
        case "ipv4": self = .ipv4
        case "ipv6": self = .ipv6
        default: return nil
        }
    }
}
