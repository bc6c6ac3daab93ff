/// Which rules a change can touch, so that only the endpoints they select are regenerated.
extension PolicyRepository {
    /// The rules of every document that differs between `other` and this repository (added, removed or replaced),
    /// from both sides. A rule only shapes the policy of the endpoints its selector picks, and rule ids are tied to
    /// names within their document, so only endpoints these rules select can get a different policy from the change.
    public func rulesChanged(from other: PolicyRepository) -> [PolicyRule] {
        let keys = Set(byKey.keys).union(other.byKey.keys)
        return keys.flatMap { key -> [PolicyRule] in
            let mine = byKey[key]
            let theirs = other.byKey[key]
            guard mine != theirs else { return [] }
            return (mine?.rules ?? []) + (theirs?.rules ?? [])
        }
    }

    /// Rules with an item (allow or deny, either direction) that selects one of `identities` as a peer, or with an
    /// HTTP rule whose own `fromEndpoints` does. When those identities appear or go away, only the endpoints these
    /// rules select can get a different policy. The HTTP rules count on their own: under an item that selects any
    /// peer (no peer field) the item's L3/L4 entry is the wildcard and never changes, but the rule's peers are
    /// identities, listed one by one in the port's HTTP policy.
    ///
    /// Found through `PeerRuleIndex`, which narrows the rules to those that may name one of the identities.
    public func rulesSelectingPeers(_ identities: [Identity]) -> [PolicyRule] {
        guard !identities.isEmpty else { return [] }
        let universe = PeerUniverse(identities)
        let selects = Self.peerTest(identities, universe)
        return peerRules.candidates(for: identities, in: universe).map { rules[$0].rule }.filter(selects)
    }

    /// The same answer as `rulesSelectingPeers`, every rule tested: what the index must agree with.
    func rulesSelectingPeersByScan(_ identities: [Identity]) -> [PolicyRule] {
        guard !identities.isEmpty else { return [] }
        let selects = Self.peerTest(identities, PeerUniverse(identities))
        // Filtered before mapping: copying every rule out of the table cost more than the matching.
        return rules.filter { selects($0.rule) }.map(\.rule)
    }

    /// Whether a rule selects one of `identities` as a peer.
    private static func peerTest(_ identities: [Identity], _ universe: PeerUniverse) -> (PolicyRule) -> Bool {
        let ids = Set(identities.map(\.id))
        func selects(_ item: PolicyItem) -> Bool { !ids.isDisjoint(with: universe.identities(for: item)) }
        return { rule in rule.peerItems.contains(where: selects) }
    }
}

extension PolicyItem {
    /// The `fromEndpoints` of the item's HTTP rules that have one.
    var httpRulePeers: [[LabelSelector]] {
        (ports ?? []).flatMap { $0.http ?? [] }.compactMap(\.endpoints)
    }
}
