import AgentAPI

/// One change seen by a watch (mvccpb.Event).
public struct EtcdEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case put = "PUT"
        case delete = "DELETE"
    }

    public var type: Kind
    /// The key after the change; for a delete only `key` and `modRevision` are set.
    public var kv: EtcdKeyValue
    /// The key before the change, when the watch asked for it and the key existed.
    public var prevKV: EtcdKeyValue?

    public init(type: Kind, kv: EtcdKeyValue, prevKV: EtcdKeyValue? = nil) {
        self.type = type
        self.kv = kv
        self.prevKV = prevKV
    }

    init(json: JSON) throws(AgentError) {
        // PUT is the enum's default value, which proto3 JSON leaves out.
        let name = json["type"]?.stringValue ?? Kind.put.rawValue
        guard let type = Kind(rawValue: name) else { throw .internal("etcd sent a watch event of type \(name)") }
        self.type = type
        kv = try EtcdKeyValue(json: json["kv"] ?? [:])
        prevKV = try json["prev_kv"].map { (json) throws(AgentError) in try EtcdKeyValue(json: json) }
    }
}

/// Why a watch ended without being cancelled. Either way the caller re-lists and watches again from the list's
/// revision + 1.
public enum EtcdWatchFailure: Error, Sendable, Equatable {
    /// The revision to watch from was compacted away (etcd keeps history only back to `compactRevision`).
    case compacted(compactRevision: Int64)
    /// The stream could not be opened, broke, or etcd ended it.
    case broken(AgentError)
}
