extension PolicyCompiler {
    /// Makes the entries right for the datapath's lookups.
    ///
    /// The policy map is an LPM trie: a lookup returns only the longest matching prefix of an identity, so a broad
    /// deny (TCP, any port) would lose to a narrower allow (TCP 8080) of the same identity. Deny must win whatever
    /// the prefix, so:
    /// - entries with the same key are merged, their rule ids joined; a deny and an allow with the same key
    ///   leave only the deny;
    /// - an allow whose key a deny covers (same identity, or the deny is for identity 0, and the deny's prefix
    ///   contains the allow's) is written as a deny, carrying the covering denies' rule ids.
    /// A deny narrower than an allow needs nothing: the lookup prefers the longer prefix. A deny on identity 0
    /// needs nothing for the datapath either (it looks up identity 0 too and lets a deny from either win), but
    /// rewriting keeps each entry's verdict self-evident.
    static func resolvePrecedence(_ entries: [PolicyEntry]) -> [PolicyEntry] {
        var allowIDs: [PolicyEntry.Key: Set<UInt32>] = [:]
        var denyIDs: [PolicyEntry.Key: Set<UInt32>] = [:]
        var template: [PolicyEntry.Key: PolicyEntry] = [:]
        for entry in entries {
            if entry.deny {
                denyIDs[entry.key, default: []].formUnion(entry.ruleIDs)
            } else {
                allowIDs[entry.key, default: []].formUnion(entry.ruleIDs)
            }
            template[entry.key] = entry
        }
        struct Peer: Hashable {
            let direction: Direction
            let identity: UInt32
        }
        var deniesByPeer: [Peer: [PolicyEntry]] = [:]
        for (key, ids) in denyIDs {
            var entry = template[key]!
            entry.deny = true
            entry.ruleIDs = ids.sorted()
            deniesByPeer[Peer(direction: key.direction, identity: key.identity), default: []].append(entry)
        }

        var result = deniesByPeer.values.flatMap { $0 }
        for (key, ids) in allowIDs where denyIDs[key] == nil {
            var entry = template[key]!
            var candidates = deniesByPeer[Peer(direction: key.direction, identity: key.identity)] ?? []
            if key.identity != 0 { candidates += deniesByPeer[Peer(direction: key.direction, identity: 0)] ?? [] }
            let covering = candidates.filter { $0.keyCovers(entry) }
            if covering.isEmpty {
                entry.deny = false
                entry.ruleIDs = ids.sorted()
            } else {
                entry.deny = true
                entry.ruleIDs = Set(covering.flatMap(\.ruleIDs)).sorted()
            }
            result.append(entry)
        }
        return dropRedundantAllows(result).sorted { $0.key < $1.key }
    }

    /// Drops allow entries inside a broader allow of the same identity or of identity 0: the datapath reaches
    /// the same verdict without them, and policy maps are small (16384 entries). This runs after denies were
    /// applied, so no deny can lie between the two: one that covered the narrower allow would have turned it into
    /// a deny. The broader entry's rules are then the ones a trace names.
    static func dropRedundantAllows(_ entries: [PolicyEntry]) -> [PolicyEntry] {
        struct Peer: Hashable {
            let direction: Direction
            let identity: UInt32
        }
        var allowsByPeer: [Peer: [PolicyEntry]] = [:]
        for entry in entries where !entry.deny {
            allowsByPeer[Peer(direction: entry.direction, identity: entry.identity), default: []].append(entry)
        }
        return entries.filter { entry in
            guard !entry.deny else { return true }
            var broader = allowsByPeer[Peer(direction: entry.direction, identity: entry.identity)] ?? []
            broader = broader.filter { $0.key != entry.key }
            if entry.identity != 0 { broader += allowsByPeer[Peer(direction: entry.direction, identity: 0)] ?? [] }
            return !broader.contains { $0.keyCovers(entry) }
        }
    }
}
