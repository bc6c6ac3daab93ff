import DatapathCore
import Policy

/// `/v1/endpoint...` and `/v1/identity...`.
extension NodeAgent {
    var endpointRoutes: [Route] {
        [
            .get("/v1/endpoint") { [self] request in try endpointList(request) },
            .get("/v1/endpoint/{id}") { [self] request in
                let id = try endpointID(request)
                guard let json = state.withLock({ state in state.endpoints[id].map { endpointJSON($0, state) } }) else {
                    throw AgentError.notFound("endpoint \(id) does not exist")
                }
                return .json(json)
            },
            .put("/v1/endpoint/{id}") { [self] request in
                let id = try endpointID(request)
                let change = try EndpointChangeRequest(json: try request.jsonBody(), id: id)
                let (json, created) = try putEndpoint(id: id, request: change)
                return .json(json, status: created ? 201 : 200)
            },
            .delete("/v1/endpoint/{id}") { [self] request in .json(try deleteEndpoint(id: try endpointID(request))) },
            .patch("/v1/endpoint/{id}/labels") { [self] request in
                .json(try patchLabels(id: try endpointID(request), body: try request.jsonBody()))
            },
            .get("/v1/endpoint/{id}/policy") { [self] request in
                .json(try realizedPolicyJSON(id: try endpointID(request)))
            },
        ]
    }

    var identityRoutes: [Route] {
        [
            .get("/v1/identity") { [self] request in
                let filter = try labelFilter(request)
                return .json(
                    .array(
                        state.withLock { state in
                            state.identities.identities.filter { identity in
                                filter.labels.allSatisfy { identity.labels.contains($0) }
                            }.map { identityJSON($0, state) }
                        }))
            },
            .get("/v1/identity/{id}") { [self] request in
                let text = try request.pathParameter("id")
                guard let id = UInt32(text) else {
                    throw AgentError.invalidField("id", "\"\(text)\" is not a numeric identity")
                }
                guard
                    let json = state.withLock({ state in
                        state.identities.identity(id: id).map { identityJSON($0, state) }
                    })
                else { throw AgentError.notFound("identity \(id) does not exist") }
                return .json(json)
            },
        ]
    }

    func endpointID(_ request: APIRequest) throws -> UInt32 {
        let text = try request.pathParameter("id")
        let plain = text.hasPrefix("cilium-local:") ? String(text.dropFirst("cilium-local:".count)) : text
        guard let id = UInt32(plain), (1...65535).contains(id) else {
            throw AgentError.invalidField("id", "\"\(text)\" is not an endpoint id (1-65535)")
        }
        return id
    }

    private func labelFilter(_ request: APIRequest) throws -> LabelSet {
        guard let text = request.query["labels"], !text.isEmpty else { return LabelSet() }
        return try LabelSet(parsing: text.split(separator: ",").map(String.init), field: "labels")
    }

    /// The endpoints by id, those with every label of `filter` (a label without source matches any source).
    /// Answers are served from `endpointListCache` while the state has not changed, per filter: listing a thousand
    /// endpoints, or finding one among them, otherwise costs JSON building on every poll.
    func endpointList(_ request: APIRequest) throws -> APIResponse {
        let filter = try labelFilter(request)
        let (version, cached, list) = state.withLock { state -> (UInt64, [UInt8]?, [JSON]) in
            let version = state.version
            if let body = endpointListCache.withLock({ $0.body(for: filter, version: version) }) {
                return (version, body, [])
            }
            return (version, nil, listEndpoints(in: state, matching: filter))
        }
        let body = cached ?? JSON.array(list).serializedBytes()
        // Concurrent misses may store out of order: each entry is still a version and what it shows.
        if cached == nil { endpointListCache.withLock { $0.store(body, for: filter, version: version) } }
        return APIResponse(status: 200, body: body, contentType: "application/json")
    }

    func listEndpoints(in state: AgentState, matching filter: LabelSet) -> [JSON] {
        state.endpoints.values.filter { endpoint in
            filter.labels.allSatisfy { wanted in
                endpoint.labels.labels.contains {
                    $0.key == wanted.key && $0.value == wanted.value
                        && (wanted.source == Label.unspecifiedSource || wanted.source == $0.source)
                }
            }
        }.sorted { $0.id < $1.id }.map { endpointJSON($0, state) }
    }

    func identityJSON(_ identity: Identity, _ state: AgentState) -> JSON {
        [
            "id": .int(Int64(identity.id)), "labels": .array(identity.labels.strings.map { .string($0) }),
            "references": .int(Int64(state.identities.references(identity.id))),
            "endpoints": .array(
                state.endpoints.values.filter { $0.identity == identity.id }.map { .int(Int64($0.id)) }.sorted {
                    $0.intValue! < $1.intValue!
                }),
        ]
    }

    func realizedPolicyJSON(id: UInt32) throws -> JSON {
        try state.withLock { state in
            guard let endpoint = state.endpoints[id] else { throw AgentError.notFound("endpoint \(id) does not exist") }
            // Read back from the kernel map: this is what the datapath holds, not what the agent intended.
            let entries = try endpointDatapath.realizedPolicy(id)
            let desired = desiredPolicy(for: endpoint, in: state)
            return [
                "endpoint": .int(Int64(id)), "revision": .int(Int64(endpoint.policyRevision)),
                "ingress-enforced": .bool(endpoint.enforceIngress), "egress-enforced": .bool(endpoint.enforceEgress),
                "entries": .array(entries.map { entry in entryJSON(entry, desired: desired, state: state) }),
                // Compiled from the policy: what the L7 datapath decides on the ports with HTTP rules.
                "http": .array(desired.http.map { $0.json(ruleName: state.policy.ruleName) }),
            ]
        }
    }

    private func entryJSON(_ entry: PolicyEntry, desired: DesiredPolicy, state: AgentState) -> JSON {
        var object = PolicyMapLayout.json(of: PolicyMapLayout.key(entry.key)).objectValue ?? [:]
        object["deny"] = .bool(entry.deny)
        object["rule-id"] = .int(Int64(entry.ruleID))
        object["rules"] = .array(state.policy.ruleName(entry.ruleID).map { [.string($0)] } ?? [])
        if entry.identity != 0, let identity = state.identities.identity(id: entry.identity) {
            object["identity-labels"] = .array(identity.labels.strings.map { .string($0) })
        }
        return .object(object)
    }
}
