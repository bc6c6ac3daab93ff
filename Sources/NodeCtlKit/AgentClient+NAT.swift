import AgentAPI

extension AgentClient {
    /// `GET /v1/nat`: one page of masquerading mappings.
    public func natMappings(limit: Int? = nil, cursor: String? = nil) throws(ClientError) -> JSON {
        var query: [(String, String)] = []
        if let limit { query.append(("limit", String(limit))) }
        if let cursor { query.append(("cursor", cursor)) }
        return try request(.GET, "/v1/nat", query: query)
    }

    /// Follows `next-cursor` pages of `GET /v1/nat` until the end or `limit` mappings. Returns
    /// `{"mappings": [...], "total": N, "next-cursor": <cursor to resume at> | null}`.
    public func allNATMappings(limit: Int? = nil, pageSize: Int = 1000) throws(ClientError) -> JSON {
        var mappings: [JSON] = []
        var cursor: String?
        var seen: Set<String> = []
        var total = JSON.null
        while true {
            let remaining = limit.map { $0 - mappings.count }
            if let remaining, remaining <= 0 { break }
            let page = try natMappings(limit: min(pageSize, remaining ?? pageSize), cursor: cursor)
            guard let pageMappings = page["mappings"]?.arrayValue else {
                throw .malformedResponse("GET /v1/nat: no \"mappings\" array")
            }
            mappings += pageMappings
            total = page["total"] ?? total
            guard let next = page["next-cursor"]?.stringValue, !next.isEmpty else {
                cursor = nil
                break
            }
            guard seen.insert(next).inserted else { throw .malformedResponse("GET /v1/nat: cursor \(next) repeated") }
            cursor = next
        }
        if let limit, mappings.count > limit { mappings.removeLast(mappings.count - limit) }
        return ["mappings": .array(mappings), "total": total, "next-cursor": JSON(cursor)]
    }

    /// `DELETE /v1/nat`: deletes every mapping (both halves of each).
    public func flushNAT() throws(ClientError) -> JSON {
        try request(.DELETE, "/v1/nat")
    }
}
