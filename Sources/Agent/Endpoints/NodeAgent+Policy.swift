import CGlibc
import DatapathCore
import Policy

/// Changing the policy in force: each change is one revision, programmed into every endpoint it can reach before
/// it is saved and answered.
extension NodeAgent {
    /// Which documents a delete removes.
    enum PolicySelection {
        case all
        case namespace(String)
        /// `kind` tells a CiliumNetworkPolicy from a NetworkPolicy of the same name; nil when the name is unique.
        case named(namespace: String, String, kind: PolicyDocument.Kind?)
    }

    /// Adds (or replaces) `documents` as one revision; the answer names them, with any warnings the parser had.
    /// In cluster mode the documents go to etcd and every node applies them from its watch.
    func importPolicies(_ documents: [PolicyDocument]) throws -> JSON {
        try checkHTTPRulesEnforceable(documents)
        if let cluster { return try importClusterPolicies(documents, cluster) }
        let warnings = documents.flatMap(\.warnings)
        return try changePolicy(reason: "policy import") { repository in
            repository.add(documents)
            var answer: [String: JSON] = ["policies": .array(documents.map { .string($0.key.description) })]
            // Only when there are any: an import as written answers as it always did.
            if !warnings.isEmpty { answer["warnings"] = .array(warnings.map { .string($0) }) }
            for warning in warnings { logger.warning("policy import: \(warning)") }
            return answer
        }
    }

    func deletePolicies(_ selection: PolicySelection) throws -> JSON {
        if let cluster { return try deleteClusterPolicies(selection, cluster) }
        return try changePolicy(reason: "policy delete") { repository in
            let deleted: [PolicyKey]
            switch selection {
            case .all: deleted = repository.deleteAll()
            case .namespace(let namespace): deleted = repository.delete(namespace: namespace)
            case .named(let namespace, let name, let kind):
                deleted = try repository.delete(namespace: namespace, name: name, kind: kind)
            }
            return ["deleted": .array(deleted.map { .string($0.description) })]
        }
    }

    /// Applies `change` to a copy of the repository; commits it only when every endpoint's new policy fits and is
    /// programmed. A failure leaves the previous policy in force, in memory and in the maps.
    private func changePolicy(reason: String, _ change: (inout PolicyRepository) throws -> [String: JSON]) throws
        -> JSON
    {
        try state.withLock { state in try changePolicy(&state, reason: reason, change) }
    }

    /// The same, for a caller that holds the state lock.
    func changePolicy(
        _ state: inout AgentState, reason: String, _ change: (inout PolicyRepository) throws -> [String: JSON]
    ) throws -> JSON {
        let before = state
        var candidate = state.policy
        var result = try change(&candidate)
        let affected = endpointsAffected(changing: state.policy, to: candidate, in: state)
        state.policy = candidate
        do {
            try regenerateAll(&state, reason: reason, only: affected)
            try persistPolicy(state)
        } catch {
            state = before
            try? regenerateAll(&state, reason: "\(reason) failed; restoring")
            throw error
        }
        // A large change leaves megabytes of freed working memory that malloc would otherwise keep.
        _ = cglibc_release_free_heap()
        result["revision"] = .int(Int64(state.policy.revision))
        logger.info("\(reason)", metadata: ["revision": "\(state.policy.revision)"])
        return .object(result)
    }

    /// The endpoints whose policy a change from `old` to `new` can alter: those a rule of a changed document selects
    /// (before or after). nil (all of them) when the change adds or drops CIDR prefixes: their identities are new
    /// peers for every rule that names the world.
    func endpointsAffected(changing old: PolicyRepository, to new: PolicyRepository, in state: AgentState)
        -> Set<UInt32>?
    {
        guard old.cidrPrefixes == new.cidrPrefixes else { return nil }
        return endpoints(selectedBy: new.rulesChanged(from: old), in: state)
    }
}
