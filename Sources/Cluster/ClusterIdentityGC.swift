import AgentAPI
import EtcdClient
import Policy

/// Releases cluster identities no node references any more, once they have stayed unreferenced for a grace period.
///
/// Every node runs one, and any number may run at once: a release is one transaction whose compares re-check, inside
/// etcd, what the collector saw — no key under `identities/refs/<n>/` exists, and `identities/id/<n>` was not
/// written since it was first seen unreferenced. Two collectors racing delete it once (the second's compare fails).
///
/// A node taking a reference cannot race with a release, because the reference is written conditionally
/// (`referenceCondition`): the write holds only while `identities/id/<n>` exists and still names the node's
/// labels (so not after the number was released and taken by another label set), and etcd orders the two
/// transactions. Either the reference lands first, and the release's compare over the refs range fails; or the
/// release lands first, and the reference's compare fails, so the node learns its number is gone (it restores it
/// with `ClusterIdentities.restore`, or allocates anew) instead of holding a reference to a number that another
/// label set may take. So a reference never outlives its identity, and a number with references is never deleted.
///
/// A number is deleted only after the grace period, so within it the number still names its labels and the
/// allocator cannot hand it to another label set: allocation takes only numbers that have no `identities/id/<n>`.
public struct ClusterIdentityGC: Sendable {
    public let client: EtcdClient
    public let keys: ClusterKeys
    /// How long an identity must stay unreferenced before it is deleted.
    public let grace: Duration

    /// Identities seen without references: since when, and the revision of their `id/<n>` key then.
    private var unreferenced: [UInt32: (modRevision: Int64, since: ContinuousClock.Instant)] = [:]

    public init(client: EtcdClient, keys: ClusterKeys, grace: Duration) {
        self.client = client
        self.keys = keys
        self.grace = grace
    }

    /// The compare under which a node writes its reference on `identity`: its key exists and holds its labels. A
    /// value compare on a missing key fails in etcd.
    public static func referenceCondition(_ identity: Identity, keys: ClusterKeys) -> EtcdCompare {
        EtcdCompare(
            key: keys.identity(identity.id), .value(Array(ClusterIdentities.value(identity.labels).serialized().utf8)))
    }

    /// The numbers waiting for their grace period to end.
    public var pending: Set<UInt32> { Set(unreferenced.keys) }

    /// One pass: remembers identities newly found unreferenced, forgets those referenced or changed again, and
    /// deletes those unreferenced for the grace period. Returns the numbers released. Throws 503 naming etcd when it
    /// cannot be reached (nothing is forgotten then: the next pass carries on).
    @discardableResult
    public mutating func collect(now: ContinuousClock.Instant = .now) throws(AgentError) -> [UInt32] {
        let identities = try client.range(prefix: keys.identityNumbers).kvs
        let referenced = Set(
            try client.range(prefix: keys.identityReferences).kvs.compactMap {
                keys.identityNumber(inReferenceKey: $0.key)
            })
        var released: [UInt32] = []
        var seen: Set<UInt32> = []
        for kv in identities {
            guard let id = keys.identityNumber(inKey: kv.key), ClusterIdentities.range.contains(id) else { continue }
            seen.insert(id)
            if referenced.contains(id) {
                unreferenced[id] = nil
                continue
            }
            guard let first = unreferenced[id], first.modRevision == kv.modRevision else {
                unreferenced[id] = (kv.modRevision, now)
                continue
            }
            guard now - first.since >= grace else { continue }
            if try release(id, kv) { released.append(id) }
            unreferenced[id] = nil
        }
        for id in unreferenced.keys where !seen.contains(id) { unreferenced[id] = nil }
        return released
    }

    /// Deletes `id` and its label index entry if, inside etcd, no reference exists and the id key is unchanged.
    /// The compare `createRevision == 0` over the refs range holds exactly when the range is empty.
    private func release(_ id: UInt32, _ kv: EtcdKeyValue) throws(AgentError) -> Bool {
        var compare = [
            EtcdCompare(prefix: keys.identityReferences(id), .createRevision(0)),
            EtcdCompare(key: kv.key, .modRevision(kv.modRevision)),
        ]
        var success: [EtcdOp] = [.delete(key: kv.key)]
        // The index entry goes with it when it names this number (allocation creates both in one transaction).
        if let labels = ClusterIdentities(client: client, keys: keys).decode(kv)?.labels {
            let indexKey = keys.identityLabels(labels)
            compare.append(EtcdCompare(key: indexKey, .value(Array(String(id).utf8))))
            success.append(.delete(key: indexKey))
        }
        return try client.txn(compare: compare, success: success, failure: []).succeeded
    }
}
