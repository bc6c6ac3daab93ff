import AgentAPI

/// The CIDR prefixes policies name, which need identities in the ipcache before the policy can be enforced.
extension PolicyRepository {
    /// Every prefix of toCIDR/fromCIDR and of toCIDRSet/fromCIDRSet, their `except` prefixes included (an except
    /// range needs an identity of its own so the longest-prefix match carves it out).
    public var cidrPrefixes: Set<IPPrefix> { facts.cidrPrefixes }

    static func cidrPrefixes(_ rules: [IndexedRule]) -> Set<IPPrefix> {
        var prefixes: Set<IPPrefix> = []
        for indexed in rules {
            for direction in Direction.allCases {
                for deny in [false, true] {
                    for item in indexed.rule.section(direction, deny: deny) ?? [] {
                        for cidr in item.cidrs ?? [] { prefixes.insert(cidr) }
                        for set in item.cidrSets ?? [] {
                            prefixes.insert(set.cidr)
                            for except in set.except { prefixes.insert(except) }
                        }
                    }
                }
            }
        }
        return prefixes
    }

    /// True when a NetworkPolicy's `ipBlock` selects pods by address: then an endpoint's addresses coming or going
    /// can change other endpoints' policy.
    public var selectsPodsByAddress: Bool { facts.selectsPodsByAddress }

    static func selectsPodsByAddress(_ rules: [IndexedRule]) -> Bool {
        rules.contains { indexed in
            Direction.allCases.contains { direction in
                (indexed.rule.section(direction, deny: false) ?? []).contains { item in
                    item.cidrSets?.contains(where: \.selectsPods) ?? false
                }
            }
        }
    }
}
