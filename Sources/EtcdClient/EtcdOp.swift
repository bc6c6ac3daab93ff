import AgentAPI

/// Which keys a read covers: one key, or every key from `key` up to (excluding) `rangeEnd`.
public struct EtcdRangeRequest: Sendable, Equatable {
    public var key: String
    /// nil reads `key` alone.
    public var rangeEnd: [UInt8]?

    public init(key: String, rangeEnd: [UInt8]? = nil) {
        self.key = key
        self.rangeEnd = rangeEnd
    }

    /// Every key starting with `prefix`.
    public init(prefix: String) {
        self.init(key: prefix, rangeEnd: EtcdJSON.prefixEnd(Array(prefix.utf8)))
    }

    /// etcd's RangeRequest.
    var json: JSON {
        var fields: [String: JSON] = ["key": EtcdJSON.bytes(key)]
        if let rangeEnd { fields["range_end"] = EtcdJSON.bytes(rangeEnd) }
        return .object(fields)
    }
}

/// One operation of a transaction (etcd's RequestOp); `put` and `delete` also shape the plain requests.
public enum EtcdOp: Sendable, Equatable {
    /// Writes `value` under `key`, attached to `lease` (0: none).
    case put(key: String, value: [UInt8], lease: Int64)
    /// Deletes `key`, or every key up to `rangeEnd` when one is given.
    case delete(key: String, rangeEnd: [UInt8]?)
    case range(EtcdRangeRequest)

    /// Writes the UTF-8 text `value` under `key`.
    public static func put(_ key: String, _ value: String, lease: Int64 = 0) -> EtcdOp {
        .put(key: key, value: Array(value.utf8), lease: lease)
    }

    public static func delete(key: String) -> EtcdOp { .delete(key: key, rangeEnd: nil) }

    public static func delete(prefix: String) -> EtcdOp {
        .delete(key: prefix, rangeEnd: EtcdJSON.prefixEnd(Array(prefix.utf8)))
    }

    public static func get(_ key: String) -> EtcdOp { .range(EtcdRangeRequest(key: key)) }

    public static func range(prefix: String) -> EtcdOp { .range(EtcdRangeRequest(prefix: prefix)) }

    /// The PutRequest, DeleteRangeRequest or RangeRequest alone.
    var requestBody: JSON {
        switch self {
        case .put(let key, let value, let lease):
            var fields: [String: JSON] = ["key": EtcdJSON.bytes(key), "value": EtcdJSON.bytes(value)]
            if lease != 0 { fields["lease"] = EtcdJSON.int64(lease) }
            return .object(fields)
        case .delete(let key, let rangeEnd):
            return EtcdRangeRequest(key: key, rangeEnd: rangeEnd).json
        case .range(let request):
            return request.json
        }
    }

    /// The RequestOp wrapping `requestBody`.
    var json: JSON {
        switch self {
        case .put: return ["request_put": requestBody]
        case .delete: return ["request_delete_range": requestBody]
        case .range: return ["request_range": requestBody]
        }
    }
}

/// What one operation of a transaction answered (etcd's ResponseOp).
public enum EtcdOpResponse: Sendable, Equatable {
    /// The write's revision.
    case put(revision: Int64)
    /// How many keys were deleted.
    case delete(deleted: Int64)
    case range(EtcdRangeResult)

    init(json: JSON) throws(AgentError) {
        if let put = json["response_put"] {
            self = .put(revision: try EtcdJSON.revision(put))
        } else if let delete = json["response_delete_range"] {
            self = .delete(deleted: try EtcdJSON.decodeInt64(delete["deleted"], field: "deleted"))
        } else if let range = json["response_range"] {
            self = .range(try EtcdRangeResult(json: range))
        } else {
            throw .internal("etcd answered a transaction with an unknown response \(json)")
        }
    }
}
