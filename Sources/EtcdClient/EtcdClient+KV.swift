import AgentAPI

extension EtcdClient {
    /// The key's current value, or nil when it does not exist.
    public func get(_ key: String) throws(AgentError) -> EtcdKeyValue? {
        try range(EtcdRangeRequest(key: key)).kvs.first
    }

    /// Every key starting with `prefix`, in key order, and the revision they were read at.
    public func range(prefix: String) throws(AgentError) -> EtcdRangeResult {
        try range(EtcdRangeRequest(prefix: prefix))
    }

    func range(_ request: EtcdRangeRequest) throws(AgentError) -> EtcdRangeResult {
        try EtcdRangeResult(json: call("/v3/kv/range", request.json))
    }

    /// Writes `value` under `key`, attached to `lease` (0: none); returns the revision of the write.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: Int64 = 0) throws(AgentError) -> Int64 {
        try EtcdJSON.revision(call("/v3/kv/put", EtcdOp.put(key: key, value: value, lease: lease).requestBody))
    }

    /// Writes the UTF-8 text `value` under `key`.
    @discardableResult
    public func put(_ key: String, _ value: String, lease: Int64 = 0) throws(AgentError) -> Int64 {
        try put(key, Array(value.utf8), lease: lease)
    }

    /// Deletes `key`; returns how many keys went (0 or 1).
    @discardableResult
    public func delete(_ key: String) throws(AgentError) -> Int64 {
        try deleteRange(EtcdOp.delete(key: key))
    }

    /// Deletes every key starting with `prefix`; returns how many went.
    @discardableResult
    public func deletePrefix(_ prefix: String) throws(AgentError) -> Int64 {
        try deleteRange(EtcdOp.delete(prefix: prefix))
    }

    private func deleteRange(_ op: EtcdOp) throws(AgentError) -> Int64 {
        let answer = try call("/v3/kv/deleterange", op.requestBody)
        return try EtcdJSON.decodeInt64(answer["deleted"], field: "deleted")
    }
}

extension EtcdClient {
    /// Drops the history before `revision`: watches from older revisions then fail as compacted.
    public func compact(_ revision: Int64) throws(AgentError) {
        _ = try call("/v3/kv/compaction", ["revision": EtcdJSON.int64(revision)])
    }
}
