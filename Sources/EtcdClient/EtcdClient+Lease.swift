import AgentAPI

/// A lease: keys attached to it are deleted when it expires or is revoked.
public struct EtcdLease: Sendable, Equatable {
    public var id: Int64
    /// Seconds granted (etcd may grant more than asked, never less than its minimum).
    public var ttl: Int64
}

extension EtcdClient {
    /// A new lease that expires after `ttl` seconds unless kept alive.
    public func grant(ttl: Int64) throws(AgentError) -> EtcdLease {
        let answer = try call("/v3/lease/grant", ["TTL": EtcdJSON.int64(ttl)])
        if let error = answer["error"]?.stringValue, !error.isEmpty { throw .unavailable("etcd: \(error)") }
        let id = try EtcdJSON.decodeInt64(answer["ID"], field: "ID")
        return EtcdLease(id: id, ttl: try EtcdJSON.decodeInt64(answer["TTL"], field: "TTL"))
    }

    /// Renews lease `id` once; returns the TTL it now has, 0 when the lease is gone (expired or revoked), so the
    /// caller must grant a new one and write its keys again.
    ///
    /// The gateway's keepalive is a stream: one request, one `{"result": ...}` line, then the stream ends.
    public func keepAliveOnce(_ id: Int64) throws(AgentError) -> Int64 {
        let answer = try call("/v3/lease/keepalive", ["ID": EtcdJSON.int64(id)])
        if let error = answer["error"] { throw EtcdGatewayError(json: error, status: 500).agentError }
        return try EtcdJSON.decodeInt64(answer["result"]?["TTL"], field: "result.TTL")
    }

    /// Lease `id`'s remaining seconds and the keys attached to it; nil when the lease is gone (expired or revoked).
    public func timeToLive(_ id: Int64) throws(AgentError) -> (ttl: Int64, keys: [String])? {
        let answer = try call("/v3/lease/timetolive", ["ID": EtcdJSON.int64(id), "keys": true])
        if let error = answer["error"]?.stringValue, !error.isEmpty { throw .unavailable("etcd: \(error)") }
        let ttl = try EtcdJSON.decodeInt64(answer["TTL"], field: "TTL")
        guard ttl > 0 else { return nil }
        var keys: [String] = []
        for (index, key) in (answer["keys"]?.arrayValue ?? []).enumerated() {
            keys.append(String(decoding: try EtcdJSON.decodeBytes(key, field: "keys[\(index)]"), as: UTF8.self))
        }
        return (ttl, keys)
    }

    /// Revokes lease `id`, deleting every key attached to it; a lease that does not exist is a 404.
    public func revoke(_ id: Int64) throws(AgentError) {
        _ = try call("/v3/lease/revoke", ["ID": EtcdJSON.int64(id)])
    }
}
