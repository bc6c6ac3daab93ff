import AgentAPI

/// Identities the cluster's store numbers: in cluster mode every node learns every identity of the cluster (so
/// policy can select pods of other nodes by their labels) and holds references only on those its endpoints use.
extension IdentityAllocator {
    /// Makes `identity` known as the cluster numbered it; true when that is new. Labels are filtered like local
    /// ones. A number the cluster gives other labels than this node holds it for is a conflict (the store's entry
    /// was replaced behind the agent's back); learning the same pair twice changes nothing.
    @discardableResult
    public mutating func learn(_ identity: Identity) throws(AgentError) -> Bool {
        let labels = filter.apply(identity.labels)
        guard range.contains(identity.id) else {
            throw AgentError.invalidField(
                "identity",
                "cluster identity \(identity.id) is outside the range \(range.lowerBound)...\(range.upperBound)")
        }
        if let known = learned[identity.id] {
            guard known == labels else {
                throw AgentError.conflict(
                    "cluster identity \(identity.id) is known for labels \(known), not \(labels)", field: "identity")
            }
            return false
        }
        if let other = learnedByLabels[labels] {
            throw AgentError.conflict("labels \(labels) already have cluster identity \(other)", field: "labels")
        }
        if let holder = self.identity(id: identity.id), holder.labels != labels {
            throw AgentError.conflict(
                "identity \(identity.id) is held for labels \(holder.labels) on this node", field: "identity")
        }
        learned[identity.id] = labels
        learnedByLabels[labels] = identity.id
        return true
    }

    /// `learn` for what the store says now, which wins over what this node learned before: a number learned for
    /// other labels, or these labels learned under another number, is forgotten first and returned in `replaced`.
    /// The store released that identity and numbered again (the lowest free number is reused) while this node did
    /// not watch, across a restart or a lost watch, and its list shows only the outcome; keeping the old pair would
    /// give the number's new pods the old labels' rights. Identities this node's endpoints hold stay a conflict.
    public mutating func learnFromStore(_ identity: Identity) throws(AgentError) -> (
        learned: Bool, replaced: [Identity]
    ) {
        let labels = filter.apply(identity.labels)
        var replaced: [Identity] = []
        if let known = learned[identity.id], known != labels, references(identity.id) == 0,
            let gone = forget(identity.id)
        {
            replaced.append(gone)
        }
        if let other = learnedByLabels[labels], other != identity.id, references(other) == 0, let gone = forget(other) {
            replaced.append(gone)
        }
        return (try learn(identity), replaced)
    }

    /// Forgets a cluster identity the store released; returns it when it was known. An identity this node still
    /// holds stays listed through its local references until they go.
    @discardableResult
    public mutating func forget(_ id: UInt32) -> Identity? {
        guard let labels = learned.removeValue(forKey: id) else { return nil }
        learnedByLabels[labels] = nil
        return Identity(id: id, labels: labels)
    }

    /// Every identity learned from the cluster, by number.
    public var learnedIdentities: [Identity] {
        learned.keys.sorted().map { Identity(id: $0, labels: learned[$0]!) }
    }
}
