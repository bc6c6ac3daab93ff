import AgentAPI

/// One condition of a transaction (etcd's Compare): a key's revision, version, value or lease against a value.
public struct EtcdCompare: Sendable, Equatable {
    /// What is compared, with the value compared against.
    public enum Target: Sendable, Equatable {
        /// The revision that created the key; 0 means the key does not exist.
        case createRevision(Int64)
        /// The revision of the key's last change.
        case modRevision(Int64)
        /// How often the key was written since its creation; 0 means the key does not exist.
        case version(Int64)
        case value([UInt8])
        /// The lease the key is attached to.
        case lease(Int64)
    }

    public enum Result: String, Sendable {
        case equal = "EQUAL"
        case greater = "GREATER"
        case less = "LESS"
        case notEqual = "NOT_EQUAL"
    }

    public var key: String
    public var target: Target
    public var result: Result
    /// When set, the compare holds for every key from `key` up to (excluding) `rangeEnd`.
    public var rangeEnd: [UInt8]?

    public init(key: String, _ target: Target, _ result: Result = .equal, rangeEnd: [UInt8]? = nil) {
        self.key = key
        self.target = target
        self.result = result
        self.rangeEnd = rangeEnd
    }

    /// The compare over every key starting with `prefix`.
    public init(prefix: String, _ target: Target, _ result: Result = .equal) {
        self.init(key: prefix, target, result, rangeEnd: EtcdJSON.prefixEnd(Array(prefix.utf8)))
    }

    var json: JSON {
        var fields: [String: JSON] = ["key": EtcdJSON.bytes(key), "result": .string(result.rawValue)]
        switch target {
        case .createRevision(let revision):
            fields["target"] = "CREATE"
            fields["create_revision"] = EtcdJSON.int64(revision)
        case .modRevision(let revision):
            fields["target"] = "MOD"
            fields["mod_revision"] = EtcdJSON.int64(revision)
        case .version(let version):
            fields["target"] = "VERSION"
            fields["version"] = EtcdJSON.int64(version)
        case .value(let value):
            fields["target"] = "VALUE"
            fields["value"] = EtcdJSON.bytes(value)
        case .lease(let lease):
            fields["target"] = "LEASE"
            fields["lease"] = EtcdJSON.int64(lease)
        }
        if let rangeEnd { fields["range_end"] = EtcdJSON.bytes(rangeEnd) }
        return .object(fields)
    }
}
