import AgentAPI
import EtcdClient
import Policy

/// Cluster-wide identity numbers in etcd. A new label set gets the lowest free number in
/// `ClusterIdentities.range` through one compare-and-swap transaction that creates both its `identities/id/<n>`
/// entry and its label index entry only if neither exists: two nodes allocating the same labels at once end with
/// one number (the loser reads the winner's), two nodes taking the same number for different labels make the
/// loser try the next. No lock is held by any node, so a node dying mid-allocation blocks nobody.
public struct ClusterIdentities: Sendable {
    /// Cilium's cluster-local identity range; reserved (1–255) and CIDR (1<<24 and up) identities stay node-local.
    public static let range: ClosedRange<UInt32> = 256...65535
    /// Attempts before giving up when every try loses a race.
    static let attempts = 16

    public let client: EtcdClient
    public let keys: ClusterKeys

    public init(client: EtcdClient, keys: ClusterKeys) {
        self.client = client
        self.keys = keys
    }

    /// The number for `labels` (already filtered), allocating it when the cluster has none. Throws 503 naming
    /// etcd when it cannot be reached, 507 when the range is full.
    public func allocate(_ labels: LabelSet) throws(AgentError) -> Identity {
        let indexKey = keys.identityLabels(labels)
        for _ in 0..<Self.attempts {
            if let existing = try client.get(indexKey) { return try identity(indexValue: existing, labels: labels) }
            let taken = try client.range(prefix: keys.identityNumbers).kvs.compactMap {
                keys.identityNumber(inKey: $0.key)
            }
            guard let candidate = Self.lowestFree(in: Set(taken)) else {
                throw AgentError.capacity(
                    "no free cluster identity left in \(Self.range.lowerBound)...\(Self.range.upperBound)")
            }
            let numberKey = keys.identity(candidate)
            let result = try client.txn(
                compare: [
                    EtcdCompare(key: numberKey, .createRevision(0)), EtcdCompare(key: indexKey, .createRevision(0)),
                ],
                success: [
                    .put(numberKey, Self.value(labels).serialized()), .put(indexKey, String(candidate)),
                ],
                failure: [.get(indexKey)])
            if result.succeeded { return Identity(id: candidate, labels: labels) }
            if case .range(let found) = result.responses.first, let existing = found.kvs.first {
                return try identity(indexValue: existing, labels: labels)
            }
            // The number went to other labels first: look again.
        }
        throw AgentError.unavailable(
            "etcd: could not allocate an identity for labels \(labels) in \(Self.attempts) attempts (contention)")
    }

    /// Creates `identity` again under its own number after it was released while a node still used it (the node's
    /// reference was refused: `ClusterIdentityGC.referenceCondition`). Succeeds when the number and the label set
    /// are both free, or already hold exactly this identity; false when either went to something else meanwhile,
    /// and the node must then allocate its labels anew.
    public func restore(_ identity: Identity) throws(AgentError) -> Bool {
        let numberKey = keys.identity(identity.id)
        let indexKey = keys.identityLabels(identity.labels)
        let result = try client.txn(
            compare: [EtcdCompare(key: numberKey, .createRevision(0)), EtcdCompare(key: indexKey, .createRevision(0))],
            success: [.put(numberKey, Self.value(identity.labels).serialized()), .put(indexKey, String(identity.id))],
            failure: [.get(indexKey)])
        if result.succeeded { return true }
        if case .range(let found) = result.responses.first, let existing = found.kvs.first {
            return existing.valueString == String(identity.id)
        }
        return false
    }

    /// Every identity of the cluster, as decoded from a list or watch of `keys.identityNumbers`.
    public func decode(_ kv: EtcdKeyValue) -> Identity? {
        guard let id = keys.identityNumber(inKey: kv.key), Self.range.contains(id),
            let json = try? JSON.parse(kv.value), let list = json["labels"]?.arrayValue
        else { return nil }
        let texts = list.compactMap(\.stringValue)
        guard texts.count == list.count, let labels = try? LabelSet(parsing: texts) else { return nil }
        return Identity(id: id, labels: labels)
    }

    /// `{"labels": ["k8s:app=web", ...]}`.
    static func value(_ labels: LabelSet) -> JSON { ["labels": .array(labels.strings.map(JSON.string))] }

    static func lowestFree(in taken: Set<UInt32>) -> UInt32? { range.first { !taken.contains($0) } }

    private func identity(indexValue kv: EtcdKeyValue, labels: LabelSet) throws(AgentError) -> Identity {
        guard let id = UInt32(kv.valueString), Self.range.contains(id) else {
            throw AgentError.internal("etcd: label index \(kv.key) holds \"\(kv.valueString)\", not an identity number")
        }
        return Identity(id: id, labels: labels)
    }
}
