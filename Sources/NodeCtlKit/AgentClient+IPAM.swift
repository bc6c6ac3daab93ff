import AgentAPI

// The IPAM plugin's routes (see openapi/openapi.yaml, tag ipam).

extension AgentClient {
    /// `GET /v1/ipam`: allocations and per-family counts.
    public func ipam() throws(ClientError) -> JSON {
        try request(.GET, "/v1/ipam")
    }

    /// `POST /v1/ipam`: allocates the next free address of `family` (every configured family when nil).
    public func ipamAllocate(family: String? = nil, owner: String? = nil, pod: String? = nil) throws(ClientError)
        -> JSON
    {
        var query: [(String, String)] = []
        if let family { query.append(("family", family)) }
        if let owner { query.append(("owner", owner)) }
        if let pod { query.append(("pod", pod)) }
        return try request(.POST, "/v1/ipam", query: query)
    }

    /// `POST /v1/ipam/{ip}`: allocates that address.
    public func ipamClaim(_ address: String, owner: String? = nil, pod: String? = nil) throws(ClientError) -> JSON {
        var query: [(String, String)] = []
        if let owner { query.append(("owner", owner)) }
        if let pod { query.append(("pod", pod)) }
        return try request(.POST, "/v1/ipam/" + percentEncodeSegment(address), query: query)
    }

    /// `DELETE /v1/ipam/{ip}`: `{"ip", "released": Bool, "owner"?}`.
    public func ipamRelease(_ address: String) throws(ClientError) -> JSON {
        try request(.DELETE, "/v1/ipam/" + percentEncodeSegment(address))
    }

    /// `POST /v1/ipam/gc`: allocations whose endpoint is gone, released unless `dryRun`.
    public func ipamGarbageCollect(dryRun: Bool) throws(ClientError) -> JSON {
        try request(.POST, "/v1/ipam/gc", query: dryRun ? [("dry-run", "true")] : [])
    }
}
