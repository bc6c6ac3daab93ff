import AgentAPI
import Cluster
import DatapathCore
import EtcdClient
import FoundationEssentials
import Glibc
import Policy

/// The policy in cluster mode lives in etcd (`ClusterPolicies`): an import or delete on any node is validated
/// here, written to etcd as one revision, and applied by every node (this one too) from its watch of the
/// policies, through the same change path as standalone (only the endpoints the change can reach are
/// regenerated; the policy document is saved, which is what a restart without etcd restores).
extension NodeAgent {
    /// How long a writer waits for its own node to apply what it wrote before answering.
    static let clusterPolicyApplyTimeout: Duration = .seconds(10)

    /// Writes `documents` (already validated) to etcd, then answers once this node has applied them.
    func importClusterPolicies(_ documents: [PolicyDocument], _ cluster: ClusterMode) throws -> JSON {
        var puts: [PolicyKey: [UInt8]] = [:]
        // A later document with the same key replaces an earlier one, as in the repository.
        for document in documents { puts[document.key] = document.source }
        let written = try cluster.policies.change(by: cluster.nodeName) { _ in
            puts.isEmpty ? nil : ClusterPolicies.Plan(puts: puts)
        }
        var answer: [String: JSON] = [
            "policies": .array(documents.map { .string($0.key.description) }),
            "revision": .int(Int64(try awaitClusterPolicy(written, cluster))),
        ]
        let warnings = documents.flatMap(\.warnings)
        if !warnings.isEmpty { answer["warnings"] = .array(warnings.map { .string($0) }) }
        for warning in warnings { logger.warning("policy import: \(warning)") }
        return .object(answer)
    }

    /// Deletes the selected documents of the cluster's policy (404 for a named one the cluster does not have).
    func deleteClusterPolicies(_ selection: PolicySelection, _ cluster: ClusterMode) throws -> JSON {
        var deleted: [PolicyKey] = []
        let written = try cluster.policies.change(by: cluster.nodeName) { contents throws(AgentError) in
            let keys = contents.documents.keys.sorted()
            switch selection {
            case .all: deleted = keys
            case .namespace(let namespace): deleted = keys.filter { $0.namespace == namespace }
            case .named(let namespace, let name, let kind):
                let key = try PolicyKey.named(namespace: namespace, name: name, kind: kind, in: keys)
                guard contents.documents[key] != nil else { throw AgentError.notFound("policy \(key) not found") }
                deleted = [key]
            }
            return deleted.isEmpty ? nil : ClusterPolicies.Plan(deletes: deleted)
        }
        return [
            "deleted": .array(deleted.map { .string($0.description) }),
            "revision": .int(Int64(try awaitClusterPolicy(written, cluster))),
        ]
    }

    /// Applies the policies' list or watch changes: the documents that differ from those in force are parsed and
    /// applied as one change, with the cluster's revision.
    func applyClusterPolicies(_ changes: [PrefixMirror.Change], revision etcdRevision: Int64) {
        guard let cluster else { return }
        var seed: (documents: [PolicyKey: [UInt8]], revision: UInt64)?
        let failure = state.withLock { state -> AgentError? in
            var documents: [PolicyKey: [UInt8]] = [:]
            for document in state.policy.documents { documents[document.key] = document.source }
            var revision = state.policy.revision
            for change in changes {
                switch change {
                case .snapshot(let kvs, _):
                    let contents = cluster.policies.contents(kvs)
                    // Fail closed: etcd that never held a policy (or lost its data) does not take this node's
                    // away; the node writes its own back instead.
                    if !contents.isWritten && !state.policy.documents.isEmpty {
                        seed = (documents, state.policy.revision)
                        continue
                    }
                    documents = contents.documents
                    revision = contents.revision
                case .put(let kv):
                    if kv.key == cluster.keys.policyRevision {
                        revision = cluster.policies.revision(kv) ?? revision
                    } else if let key = cluster.keys.policyKey(inKey: kv.key) {
                        documents[key] = kv.value
                    }
                case .delete(let key):
                    if let key = cluster.keys.policyKey(inKey: key) { documents[key] = nil }
                }
            }
            let removed = Set(state.policy.documents.map(\.key)).subtracting(documents.keys)
            var added: [PolicyDocument] = []
            for (key, source) in documents where state.policy.document(key)?.source != source {
                do {
                    added.append(try Self.clusterPolicyDocument(key, source))
                } catch {
                    // Written by a node that accepts what this one does not (another version): the rest applies.
                    cluster.logger.error(
                        "cluster policy document refused", metadata: ["policy": "\(key)", "error": "\(error)"])
                }
            }
            guard !removed.isEmpty || !added.isEmpty || revision != state.policy.revision else { return nil }
            do {
                _ = try changePolicy(&state, reason: "cluster policy change") { repository in
                    repository.delete(keys: removed)
                    repository.add(added)
                    repository.revision = revision
                    return [:]
                }
                return nil
            } catch {
                logger.error(
                    "applying the cluster's policy failed; the previous policy stays in force",
                    metadata: ["revision": "\(revision)", "error": "\(error)"])
                return error as? AgentError ?? AgentError.internal("\(error)")
            }
        }
        cluster.policyProgress.withLock { $0 = ClusterPolicyProgress(etcdRevision: etcdRevision, failure: failure) }
        if let seed {
            cluster.logger.warning(
                "etcd holds no policy; writing this node's", metadata: ["revision": "\(seed.revision)"])
            do {
                _ = try cluster.policies.seed(seed.documents, revision: seed.revision, by: cluster.nodeName)
            } catch {
                // The next list (after etcd's next failure) tries again; until then the node keeps its policy.
                cluster.logger.error("writing this node's policy to etcd failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// A document as etcd holds it: one document, under its own key.
    static func clusterPolicyDocument(_ key: PolicyKey, _ source: [UInt8]) throws -> PolicyDocument {
        let documents = try PolicyParser.parse(try JSON.parse(source))
        guard documents.count == 1, let document = documents.first, document.key == key else {
            throw AgentError.internal("etcd's policy entry \(key) does not hold the document \(key)")
        }
        return document
    }

    /// Waits until this node's watch has applied `written`; its cluster revision. Nothing written: the revision
    /// in force.
    private func awaitClusterPolicy(_ written: ClusterPolicies.Written?, _ cluster: ClusterMode) throws -> UInt64 {
        guard let written else { return state.withLock { $0.policy.revision } }
        let deadline = ContinuousClock.now + Self.clusterPolicyApplyTimeout
        while true {
            let progress = cluster.policyProgress.withLock { $0 }
            if progress.etcdRevision >= written.etcdRevision {
                guard let failure = progress.failure else { return written.revision }
                throw AgentError(
                    code: failure.code, status: failure.status,
                    message: "policy revision \(written.revision) is stored in etcd for the cluster, but this node "
                        + "could not apply it: \(failure.message)", field: failure.field)
            }
            guard ContinuousClock.now < deadline else {
                throw AgentError.unavailable(
                    "policy revision \(written.revision) is stored in etcd for the cluster, but this node's watch of "
                        + "etcd has not delivered it within \(Self.clusterPolicyApplyTimeout)")
            }
            usleep(5_000)
        }
    }
}

/// How far a node has applied the cluster's policy.
struct ClusterPolicyProgress: Sendable {
    /// The etcd revision up to which the policies' watch has been applied (or failed to apply).
    var etcdRevision: Int64 = 0
    /// Why the last change from the watch could not be applied; nil when it was.
    var failure: AgentError?
}
