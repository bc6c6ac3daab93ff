import AgentAPI
import EtcdClient
import FoundationEssentials
import Glibc
import Policy

/// The cluster's policy repository in etcd: one key per document (the document as submitted) and a revision key
/// that every change writes with the next number. A change is one transaction that holds only if the revision
/// key is still the one read: two nodes changing the policy at once never interleave, the loser reads again and
/// retries, so the cluster has one revision for one set of documents.
///
/// Nodes do not apply what they write here: every node, the writer included, takes the change from a watch of
/// `keys.policies`.
public struct ClusterPolicies: Sendable {
    /// Attempts before giving up when every try loses a race; after each lost race a writer waits a random moment,
    /// longer each time, so writers that keep colliding spread out instead of colliding again in step.
    static let attempts = 16
    /// etcd's default `--max-txn-ops`: a transaction with more operations is refused.
    public static let maxOperations = 128

    public let client: EtcdClient
    public let keys: ClusterKeys

    public init(client: EtcdClient, keys: ClusterKeys) {
        self.client = client
        self.keys = keys
    }

    /// The policy as etcd holds it: each document's stored text, the revision.
    public struct Contents: Sendable, Equatable {
        public var documents: [PolicyKey: [UInt8]] = [:]
        /// 1 while nothing was ever written: the revision of an empty repository.
        public var revision: UInt64 = 1
        /// The revision key's last write in etcd (0: none): what a change compares against.
        var modRevision: Int64 = 0

        public init() {}

        /// Whether any policy change was ever written: false for a new cluster, and for one whose etcd lost its
        /// data.
        public var isWritten: Bool { modRevision != 0 }
    }

    /// What a change writes: documents to add or replace, documents to delete.
    public struct Plan: Sendable {
        public var puts: [PolicyKey: [UInt8]]
        public var deletes: [PolicyKey]

        public init(puts: [PolicyKey: [UInt8]] = [:], deletes: [PolicyKey] = []) {
            self.puts = puts
            self.deletes = deletes
        }
    }

    /// A written change: the cluster's new policy revision and etcd's revision of the transaction (the watch that
    /// delivers it brings its consumer to at least that revision).
    public struct Written: Sendable, Equatable {
        public var revision: UInt64
        public var etcdRevision: Int64
    }

    /// Decodes a list of `keys.policies`. Keys it does not know are ignored.
    public func contents(_ kvs: [EtcdKeyValue]) -> Contents {
        var contents = Contents()
        for kv in kvs {
            if kv.key == keys.policyRevision {
                contents.revision = revision(kv) ?? contents.revision
                contents.modRevision = kv.modRevision
            } else if let key = keys.policyKey(inKey: kv.key) {
                contents.documents[key] = kv.value
            }
        }
        return contents
    }

    /// The revision a `policies/revision` value carries; nil when it carries none.
    public func revision(_ kv: EtcdKeyValue) -> UInt64? {
        (try? JSON.parse(kv.value))?["revision"]?.intValue.flatMap { UInt64(exactly: $0) }
    }

    /// Writes a node's policy into etcd that has none (a new cluster, or one whose etcd lost its data), keeping the
    /// node's revision; only while the revision key does not exist, so of nodes seeding at once one wins and the
    /// others take its policy from their watch. nil when etcd had a policy by then.
    public func seed(
        _ documents: [PolicyKey: [UInt8]], revision: UInt64, by node: String
    ) throws(AgentError) -> Written? {
        var ops: [EtcdOp] = documents.keys.sorted().map {
            .put(key: keys.policy($0), value: documents[$0]!, lease: 0)
        }
        let marker: JSON = ["revision": .int(Int64(revision)), "node": .string(node)]
        ops.append(.put(keys.policyRevision, marker.serialized()))
        guard ops.count <= Self.maxOperations else {
            throw AgentError.capacity("\(ops.count - 1) policy documents are more than one etcd transaction takes")
        }
        let result = try client.txn(compare: [EtcdCompare(key: keys.policyRevision, .createRevision(0))], success: ops)
        return result.succeeded ? Written(revision: revision, etcdRevision: result.revision) : nil
    }

    /// Reads the policy, asks `plan` what to write (nil: nothing), and writes it with the next revision in one
    /// transaction; reads again and retries when another change came in between. `plan` may throw (a document
    /// to delete that does not exist): nothing is written then. 503 naming etcd when it cannot be reached.
    public func change(
        by node: String, _ plan: (Contents) throws(AgentError) -> Plan?
    ) throws(AgentError) -> Written? {
        for attempt in 0..<Self.attempts {
            if attempt > 0 { usleep(UInt32.random(in: 1_000...(2_000 * UInt32(attempt)))) }
            let current = contents(try client.range(prefix: keys.policies).kvs)
            guard let planned = try plan(current) else { return nil }
            let next = current.revision + 1
            var ops: [EtcdOp] = planned.deletes.map { .delete(key: keys.policy($0)) }
            ops += planned.puts.keys.sorted().map { .put(key: keys.policy($0), value: planned.puts[$0]!, lease: 0) }
            let marker: JSON = ["revision": .int(Int64(next)), "node": .string(node)]
            ops.append(.put(keys.policyRevision, marker.serialized()))
            guard ops.count <= Self.maxOperations else {
                throw AgentError.capacity(
                    "a policy change in cluster mode writes at most \(Self.maxOperations - 1) documents at once "
                        + "(etcd's limit of operations in one transaction); this one writes \(ops.count - 1)")
            }
            let result = try client.txn(
                compare: [EtcdCompare(key: keys.policyRevision, .modRevision(current.modRevision))], success: ops)
            if result.succeeded { return Written(revision: next, etcdRevision: result.revision) }
        }
        throw AgentError.unavailable(
            "etcd: the policy changed under every one of \(Self.attempts) attempts to change it (contention)")
    }
}
