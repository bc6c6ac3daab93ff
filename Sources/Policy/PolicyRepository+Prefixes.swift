/// The CIDR prefixes policies name, which need identities in the ipcache before the policy can be enforced.
extension PolicyRepository {
    /// Every prefix of toCIDR/fromCIDR and of toCIDRSet/fromCIDRSet, their `except` prefixes included (an except
    /// range needs an identity of its own so the longest-prefix match carves it out), in canonical text.
    public var cidrPrefixes: Set<String> {
        var prefixes: Set<String> = []
        for indexed in rules {
            for direction in Direction.allCases {
                for deny in [false, true] {
                    for item in indexed.rule.section(direction, deny: deny) ?? [] {
                        for cidr in item.cidrs ?? [] { prefixes.insert(cidr.description) }
                        for set in item.cidrSets ?? [] {
                            prefixes.insert(set.cidr.description)
                            for except in set.except { prefixes.insert(except.description) }
                        }
                    }
                }
            }
        }
        return prefixes
    }
}
