import AgentAPI

/// One key as etcd stores it (mvccpb.KeyValue).
public struct EtcdKeyValue: Sendable, Equatable {
    public var key: String
    public var value: [UInt8]
    /// The revision of the key's last creation (0 in a delete event).
    public var createRevision: Int64
    /// The revision of the key's last change.
    public var modRevision: Int64
    /// How often the key was written since its creation (0 in a delete event).
    public var version: Int64
    /// The lease the key is attached to; 0 for none.
    public var lease: Int64

    public init(
        key: String, value: [UInt8], createRevision: Int64 = 0, modRevision: Int64 = 0, version: Int64 = 0,
        lease: Int64 = 0
    ) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }

    /// The value as UTF-8 text.
    public var valueString: String { String(decoding: value, as: UTF8.self) }

    init(json: JSON) throws(AgentError) {
        let key = try EtcdJSON.decodeBytes(json["key"], field: "kv.key")
        self.key = String(decoding: key, as: UTF8.self)
        value = try EtcdJSON.decodeBytes(json["value"], field: "kv.value")
        createRevision = try EtcdJSON.decodeInt64(json["create_revision"], field: "kv.create_revision")
        modRevision = try EtcdJSON.decodeInt64(json["mod_revision"], field: "kv.mod_revision")
        version = try EtcdJSON.decodeInt64(json["version"], field: "kv.version")
        lease = try EtcdJSON.decodeInt64(json["lease"], field: "kv.lease")
    }
}

/// The answer to a range read: the keys found and the store's revision when it was read (a watch from
/// `revision + 1` then sees every later change).
public struct EtcdRangeResult: Sendable, Equatable {
    public var kvs: [EtcdKeyValue]
    public var revision: Int64

    public init(kvs: [EtcdKeyValue], revision: Int64) {
        self.kvs = kvs
        self.revision = revision
    }

    init(json: JSON) throws(AgentError) {
        var kvs: [EtcdKeyValue] = []
        for kv in json["kvs"]?.arrayValue ?? [] { kvs.append(try EtcdKeyValue(json: kv)) }
        self.kvs = kvs
        revision = try EtcdJSON.revision(json)
    }
}
