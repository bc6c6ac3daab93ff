import CGlibc
import DatapathCore
import Policy

/// `/v1/policy`: import, list, delete CiliumNetworkPolicy documents; `/v1/policy/trace`.
extension NodeAgent {
    var policyRoutes: [Route] {
        [
            .get("/v1/policy") { [self] _ in
                // {"policies":[...],"revision":N}, the documents spliced in as stored.
                let body = state.withLock { state in
                    Array(#"{"policies":"#.utf8) + state.policy.storedJSONArray
                        + Array(#","revision":\#(state.policy.revision)}"#.utf8)
                }
                return APIResponse(status: 200, body: body, contentType: "application/json")
            },
            .put("/v1/policy") { [self] request in .json(try putPolicy(try request.jsonBody())) },
            .delete("/v1/policy") { [self] request in .json(try deletePolicy(request)) },
            .get("/v1/policy/trace") { [self] request in .json(try trace(request)) },
        ]
    }

    /// Validates every document first (one bad document rejects the request), then applies them as one revision.
    func putPolicy(_ body: JSON) throws -> JSON {
        let documents = try PolicyParser.parse(body)
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

    func deletePolicy(_ request: APIRequest) throws -> JSON {
        let namespace = request.query["namespace"]
        let name = request.query["name"]
        let all = try request.queryBool("all") ?? false
        try KnownKeys.check(request.query.keys, known: ["namespace", "name", "all"], kind: "parameter")
        for (field, value) in [("namespace", namespace), ("name", name)] where value?.isEmpty == true {
            throw AgentError.invalidField(field, "must not be empty")
        }
        guard all || namespace != nil || name != nil else {
            throw AgentError.invalidField("namespace", "say which policies: namespace and name, namespace, or all=true")
        }
        if all && (namespace != nil || name != nil) {
            throw AgentError.invalidField("all", "all=true cannot be combined with namespace or name")
        }
        return try changePolicy(reason: "policy delete") { repository in
            let deleted: [PolicyKey]
            if all {
                deleted = repository.deleteAll()
            } else if let name {
                deleted = try repository.delete(namespace: namespace ?? "default", name: name)
            } else {
                deleted = repository.delete(namespace: namespace!)
            }
            return ["deleted": .array(deleted.map { .string($0.description) })]
        }
    }

    /// Applies `change` to a copy of the repository; commits it only when every endpoint's new policy fits and is
    /// programmed. A failure leaves the previous policy in force, in memory and in the maps.
    private func changePolicy(reason: String, _ change: (inout PolicyRepository) throws -> [String: JSON]) throws -> JSON {
        try state.withLock { state in
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
    }

    /// The endpoints whose policy a change from `old` to `new` can alter: those a rule of a changed document selects
    /// (before or after). nil (all of them) when the change adds or drops CIDR prefixes: their identities are new
    /// peers for every rule that names the world.
    func endpointsAffected(changing old: PolicyRepository, to new: PolicyRepository, in state: AgentState) -> Set<UInt32>? {
        guard old.cidrPrefixes == new.cidrPrefixes else { return nil }
        return endpoints(selectedBy: new.rulesChanged(from: old), in: state)
    }
}
