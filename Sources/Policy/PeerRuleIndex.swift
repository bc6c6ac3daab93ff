/// The rules filed by the peers their items name, so that an identity that appears or goes away is matched only
/// against the rules that can name it (`PolicyRepository.rulesSelectingPeers`). Matching every item of 500 rules
/// against a new identity cost an endpoint create about a millisecond.
///
/// The index only narrows: it gives every rule that can select one of the identities, and the caller decides each
/// with the same test as without it, so the answer is the same.
/// - Endpoint selectors (`fromEndpoints`, `toEndpoints`, NetworkPolicy peers, HTTP rules' `fromEndpoints`) go
///   through a `SelectorIndex`; those it cannot file (no `In` requirement, `{}`) are matched against every
///   identity there.
/// - Entities are filed by entity and looked up by the entities that select one of the identities.
/// - Items selecting any peer (ports alone) select identity 0 only.
/// - Items with CIDR, CIDR set or service peers are always checked.
struct PeerRuleIndex: Sendable {
    private let selectors: SelectorIndex
    /// The rule of each selector of `selectors`, a position in the repository's rules.
    private let owners: [Int]
    private let byEntity: [Entity: [Int]]
    private let anyPeer: [Int]
    private let always: [Int]

    init(_ rules: [IndexedRule]) {
        var selectors: [LabelSelector] = []
        var owners: [Int] = []
        var byEntity: [Entity: [Int]] = [:]
        var anyPeer: [Int] = []
        var always: [Int] = []
        for (position, indexed) in rules.enumerated() {
            for item in indexed.rule.peerItems {
                for selector in item.endpoints ?? [] {
                    selectors.append(selector)
                    owners.append(position)
                }
                for entity in item.entities ?? [] { byEntity[entity, default: []].append(position) }
                if item.selectsAnyPeer { anyPeer.append(position) }
                if item.cidrs != nil || item.cidrSets != nil || item.services != nil { always.append(position) }
            }
        }
        self.selectors = SelectorIndex(selectors)
        self.owners = owners
        self.byEntity = byEntity
        self.anyPeer = anyPeer
        self.always = always
    }

    /// Positions of the rules that may select one of `identities` as a peer, ascending: a superset of those that
    /// do.
    func candidates(for identities: [Identity], in universe: PeerUniverse) -> [Int] {
        var found = Set(always)
        let ids = Set(identities.map(\.id))
        if ids.contains(0) { found.formUnion(anyPeer) }
        for (entity, positions) in byEntity
        where !ids.isDisjoint(with: universe.identities(for: PolicyItem(entities: [entity]))) {
            found.formUnion(positions)
        }
        for identity in identities {
            for selector in selectors.matching(identity.labels) { found.insert(owners[selector]) }
        }
        return found.sorted()
    }
}

extension PolicyRule {
    /// Every item that names peers: the items of every section, and for each HTTP rule with its own
    /// `fromEndpoints` an item of those endpoints.
    var peerItems: [PolicyItem] {
        Direction.allCases.flatMap { direction in
            [false, true].flatMap { deny in
                (section(direction, deny: deny) ?? []).flatMap { item in
                    [item] + item.httpRulePeers.map { PolicyItem(endpoints: $0) }
                }
            }
        }
    }
}
