import DatapathCore
import Policy

/// `/v1/policy`: import, list, delete CiliumNetworkPolicy and NetworkPolicy documents; `/v1/policy/trace`.
extension NodeAgent {
    var policyRoutes: [Route] {
        [
            .get("/v1/policy") { [self] _ in
                // {"policies":[...],"revision":N}, the documents spliced in as stored.
                let body = state.withLock { state in
                    Array(#"{"policies":"#.utf8) + state.policy.storedJSONArray()
                        + Array(#","revision":\#(state.policy.revision)}"#.utf8)
                }
                return APIResponse(status: 200, body: body, contentType: "application/json")
            },
            .put("/v1/policy") { [self] request in .json(try putPolicy(request)) },
            .delete("/v1/policy") { [self] request in .json(try deletePolicy(request)) },
            .get("/v1/policy/trace") { [self] request in .json(try trace(request)) },
        ]
    }

    /// Validates every document first (one bad document rejects the request), then applies them as one revision.
    /// An array of documents is parsed one element at a time, and no value tree of the body is left when the import
    /// starts: for hundreds of documents the tree is as big as the compiled policy of every endpoint.
    func putPolicy(_ request: APIRequest) throws -> JSON {
        let documents = try PolicyParser.parse(reading: request.jsonBody(elements:))
        return try importPolicies(documents)
    }

    func deletePolicy(_ request: APIRequest) throws -> JSON {
        let namespace = request.query["namespace"]
        let name = request.query["name"]
        let all = try request.queryBool("all") ?? false
        try KnownKeys.check(request.query.keys, known: ["namespace", "name", "kind", "all"], kind: "parameter")
        var kind: PolicyDocument.Kind?
        if let text = request.query["kind"] {
            guard let value = PolicyDocument.Kind(rawValue: text) else {
                throw AgentError.invalidField(
                    "kind", "expected CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or NetworkPolicy")
            }
            guard name != nil else { throw AgentError.invalidField("kind", "kind selects among policies of one name") }
            kind = value
        }
        for (field, value) in [("namespace", namespace), ("name", name)] where value?.isEmpty == true {
            throw AgentError.invalidField(field, "must not be empty")
        }
        guard all || namespace != nil || name != nil else {
            throw AgentError.invalidField("namespace", "say which policies: namespace and name, namespace, or all=true")
        }
        if all && (namespace != nil || name != nil) {
            throw AgentError.invalidField("all", "all=true cannot be combined with namespace or name")
        }
        if all { return try deletePolicies(.all) }
        if let name { return try deletePolicies(.named(namespace: namespace ?? "default", name, kind: kind)) }
        return try deletePolicies(.namespace(namespace!))
    }
}
