import DatapathCore

/// `GET /v1/ct` (filtered, paged listing) and `DELETE /v1/ct` (flush all, or one endpoint's entries).
struct ConntrackRoutes {
    let plugin: ConntrackGCPlugin

    /// Entries read per request at most, matching or not, so a filter that matches little cannot make one request
    /// walk a table of a million entries: the client follows `next-cursor` instead.
    static let scanBudget = 65536

    var routes: [Route] {
        [
            .get("/v1/ct") { request in try list(request) },
            .delete("/v1/ct") { request in try flush(request) },
        ]
    }

    /// `?endpoint=ID&ip=IP&port=N&protocol=TCP&limit=N&cursor=HEX` →
    /// `{"entries": [...], "next-cursor": "<hex of the last key read>" | null}`.
    func list(_ request: APIRequest) throws -> APIResponse {
        let query = try ConntrackQuery(
            request, allowed: ["endpoint", "ip", "port", "protocol", "limit", "cursor"])
        let limit = Int(try request.queryInt("limit", in: 1...10_000) ?? 1000)
        let map = try plugin.sweeper().conntrack
        var cursor: [UInt8]? = nil
        if let text = request.query["cursor"] {
            guard let bytes = Hex.decode(text), bytes.count == map.info.keySize else {
                throw AgentError.invalidField("cursor", "expected \(map.info.keySize * 2) hex digits from next-cursor")
            }
            // For a key it no longer holds, a hash map's next-key restarts at the first entry: the listing would
            // silently start over. Say so instead.
            guard try map.lookup(key: bytes) != nil else {
                throw AgentError.conflict(
                    "cursor: the entry it points to has expired or been deleted; list again without a cursor",
                    field: "cursor")
            }
            cursor = bytes
        }
        let now = MonotonicClock.seconds()
        var entries: [JSON] = []
        var scanned = 0
        var more = false
        while let key = try map.nextKey(after: cursor) {
            if entries.count == limit || scanned == Self.scanBudget {
                more = true
                break
            }
            cursor = key
            scanned += 1
            guard let value = try map.lookup(key: key), let entry = ConntrackEntry(keyBytes: key, valueBytes: value)
            else { continue }  // deleted meanwhile
            if query.matches(entry.key, entry.value) { entries.append(entry.json(now: now)) }
        }
        return .json([
            "entries": .array(entries),
            "next-cursor": more ? .string(Hex.encode(cursor ?? [])) : .null,
        ])
    }

    /// `DELETE /v1/ct[?endpoint=ID]` → `{"deleted": N}`.
    func flush(_ request: APIRequest) throws -> APIResponse {
        let query = try ConntrackQuery(request, allowed: ["endpoint"])
        let stats = try query.endpoint.map { try plugin.flush(endpoint: $0) } ?? plugin.flushAll()
        return .json(["deleted": .int(Int64(stats.deleted))])
    }
}
