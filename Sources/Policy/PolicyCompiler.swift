/// A rule as the repository holds it: with the document it belongs to and the id of each of its items.
public struct IndexedRule: Sendable {
    public let document: PolicyKey
    public let rule: PolicyRule
    /// Rule ids of the items of `ingress`, `ingressDeny`, `egress`, `egressDeny`, parallel to their items.
    let itemIDs: [Direction: [Bool: [UInt32]]]

    public init(document: PolicyKey, rule: PolicyRule, ids: (Direction, Bool, Int) -> UInt32) {
        self.document = document
        self.rule = rule
        var itemIDs: [Direction: [Bool: [UInt32]]] = [:]
        for direction in Direction.allCases {
            for deny in [false, true] {
                let count = rule.section(direction, deny: deny)?.count ?? 0
                itemIDs[direction, default: [:]][deny] = (0..<count).map { ids(direction, deny, $0) }
            }
        }
        self.itemIDs = itemIDs
    }

    /// The id of item `index` of a section.
    public func id(_ direction: Direction, deny: Bool, index: Int) -> UInt32 {
        itemIDs[direction]![deny]![index]
    }

    /// Every item id of the rule.
    public var allIDs: [UInt32] { itemIDs.values.flatMap { $0.values.flatMap { $0 } } }
}

/// Turns the rules that select an endpoint into its datapath policy.
public enum PolicyCompiler {
    /// The policy of an endpoint with `labels`, peers taken from `identities`.
    ///
    /// Enforcement per direction: `never`, nothing; `always`, default-deny; `default`, default-deny when a
    /// selecting rule has an allow or deny section for the direction (present, even empty) without opting out
    /// through `enableDefaultDeny`. When only opted-out rules have sections and some have deny items, the
    /// direction is enforced with an allow-all entry (identity 0, any protocol, no rule) under the denies.
    public static func resolve(
        rules: [IndexedRule], endpoint labels: LabelSet, identities: [Identity], mode: EnforcementMode
    ) -> EndpointPolicy {
        resolve(rules: rules, endpoint: labels, peers: PolicyPeers(identities), mode: mode)
    }

    /// Same, with peers prepared once for many endpoints. `namedPorts` are the endpoint's own, which named ports of
    /// its ingress rules resolve against (those of egress rules resolve against each peer's, from `universe`).
    public static func resolve(
        rules: [IndexedRule], endpoint labels: LabelSet, peers universe: PolicyPeers, mode: EnforcementMode,
        namedPorts: [NamedPort] = []
    ) -> EndpointPolicy {
        if mode == .never { return EndpointPolicy(ingressEnforced: false, egressEnforced: false, entries: []) }
        let selecting = rules.filter { $0.rule.endpointSelector.matches(labels) }
        // Nothing selects the endpoint: no entries, and building the peer universe (every identity) is wasted.
        if selecting.isEmpty {
            return EndpointPolicy(ingressEnforced: mode == .always, egressEnforced: mode == .always, entries: [])
        }
        var enforced: [Direction: Bool] = [:]
        var entries: [PolicyEntry] = []
        var ingressOpen = false
        for direction in Direction.allCases {
            let withSection = selecting.filter { $0.rule.hasSection(direction) }
            let defaultDeny = mode == .always || withSection.contains { $0.rule.defaultDeny(direction) }
            let hasDeny = withSection.contains { !($0.rule.section(direction, deny: true) ?? []).isEmpty }
            guard defaultDeny || hasDeny else {
                enforced[direction] = false
                continue
            }
            enforced[direction] = true
            if !defaultDeny {
                entries.append(PolicyEntry(identity: 0, direction: direction))
                if direction == .ingress { ingressOpen = true }
            }
            for indexed in selecting {
                for deny in [false, true] {
                    for (i, item) in (indexed.rule.section(direction, deny: deny) ?? []).enumerated() {
                        let id = indexed.id(direction, deny: deny, index: i)
                        entries += self.entries(
                            for: item, direction: direction, deny: deny, ruleID: id, universe: universe,
                            namedPorts: namedPorts)
                    }
                }
            }
        }
        let http =
            enforced[.ingress]!
            ? httpPolicies(selecting: selecting, universe: universe, namedPorts: namedPorts, open: ingressOpen) : []
        return EndpointPolicy(
            ingressEnforced: enforced[.ingress]!, egressEnforced: enforced[.egress]!,
            entries: resolvePrecedence(entries), http: http)
    }

    /// Same, with identities as (number, labels) pairs.
    public static func resolve(
        rules: [IndexedRule], endpoint labels: LabelSet, identities: [(id: UInt32, labels: LabelSet)],
        mode: EnforcementMode
    ) -> EndpointPolicy {
        resolve(
            rules: rules, endpoint: labels, identities: identities.map { Identity(id: $0.id, labels: $0.labels) },
            mode: mode)
    }

    static func entries(
        for item: PolicyItem, direction: Direction, deny: Bool, ruleID: UInt32, universe: PolicyPeers,
        namedPorts: [NamedPort] = []
    ) -> [PolicyEntry] {
        let peers = universe.identities(for: item)
        // A named port is the destination's: the endpoint's own for ingress, each peer's for egress.
        let perPeer = direction == .egress && (item.ports?.contains { $0.name != nil } ?? false)
        let ports = portKeys(item.ports, named: namedPorts)
        return peers.flatMap { peer in
            (perPeer ? portKeys(item.ports, named: universe.namedPorts(of: peer)) : ports).map { key in
                PolicyEntry(
                    identity: peer, direction: direction, proto: key.proto, port: key.port,
                    portPrefixBits: key.bits, deny: deny, ruleIDs: [ruleID])
            }
        }
    }

    /// The (protocol, port, prefix bits) keys of a `toPorts`: nil is any protocol; ANY over every port is also
    /// any protocol (so ICMP too); ANY with ports is TCP, UDP and SCTP; ranges become aligned prefixes.
    /// A named port becomes the ports `named` gives that name (of its protocol, or any for ANY); none, when no
    /// port has the name.
    static func portKeys(_ ports: [PortSpec]?, named: [NamedPort] = []) -> [(proto: UInt8, port: UInt16, bits: UInt8)] {
        guard let ports else { return [(0, 0, 0)] }
        var keys: [(proto: UInt8, port: UInt16, bits: UInt8)] = []
        for spec in ports {
            if let name = spec.name {
                for port in named where port.name == name && (spec.proto == .any || spec.proto == port.proto) {
                    for proto in port.proto.numbers { keys.append((proto, port.port, 16)) }
                }
                continue
            }
            if spec.proto == .any && spec.port == 0 {
                keys.append((0, 0, 0))
                continue
            }
            let prefixes = PortPrefix.split(spec.range)
            for proto in spec.proto.numbers {
                for prefix in prefixes { keys.append((proto, prefix.port, prefix.bits)) }
            }
        }
        return keys
    }
}
