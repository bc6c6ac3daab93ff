import AgentAPI
import FoundationEssentials
import HTTPClient

/// The `cluster` section of the agent's configuration: which cluster this node belongs to, under which name and
/// address other nodes know it, and the etcd members that hold the cluster's state. Without the section the agent
/// runs standalone.
public struct ClusterConfig: Sendable, Equatable {
    /// The cluster's name: part of every key the agent writes, so clusters can share one etcd.
    public var name = "default"
    /// This node's name in the cluster; the host name when not given.
    public var nodeName: String
    /// The IPv4 address other nodes route this node's pods through; when nil, the address of the interface that
    /// holds the default route, found at start.
    public var nodeAddress: IPAddress?
    public var etcd: EtcdSettings
    /// How often this node looks for identities no node references (`identity-gc-interval`; Cilium's default).
    public var identityGCIntervalMilliseconds: Int64 = 15 * 60 * 1000
    /// How long an identity stays unreferenced before it is released (`identity-gc-grace`); the interval when
    /// not given, so a number is released on the pass after the one that found it unused.
    public var identityGCGraceMilliseconds: Int64?

    /// How to reach etcd.
    public struct EtcdSettings: Sendable, Equatable {
        /// Client URLs (`http://host:2379`, `https://...`), tried in turn.
        public var endpoints: [String]
        /// PEM files for TLS: the CA that signed the members' certificates, and this node's client certificate and
        /// key (both or neither).
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?
        /// How long the node's entries outlive it: its lease's TTL. A node down for longer disappears from the others.
        public var leaseTTLSeconds: Int64 = 15

        public init(endpoints: [String]) { self.endpoints = endpoints }
    }

    public init(nodeName: String, etcd: EtcdSettings) {
        self.nodeName = nodeName
        self.etcd = etcd
    }

    static let keys: Set<String> = [
        "name", "node-name", "node-address", "etcd", "identity-gc-interval", "identity-gc-grace",
    ]
    static let etcdKeys: Set<String> = ["endpoints", "ca-file", "cert-file", "key-file", "lease-ttl"]
    /// Lease TTLs accepted: etcd's minimum is 5 s; an hour is far beyond any sensible failure detection.
    static let leaseTTLRange: ClosedRange<Int64> = 5...3600
    /// Identity collection intervals and grace periods accepted, in milliseconds: short ones are for tests.
    static let identityGCRange: ClosedRange<Int64> = 100...(24 * 3_600_000)

    /// Parses the section; 400-style errors name the field (`cluster.etcd.endpoints[1]`). File paths are checked to
    /// be readable here, so a wrong path fails the start rather than the first request.
    public init(json: JSON, hostName: String = ProcessInfo.processInfo.hostName) throws(AgentError) {
        let object = try json.requireObject("cluster")
        try KnownKeys.check(object.keys, known: Self.keys, prefix: "cluster", kind: "cluster option")
        guard let etcdJSON = object["etcd"] else {
            throw AgentError.invalidField("cluster.etcd", "missing: the etcd endpoints holding the cluster's state")
        }
        etcd = try Self.etcdSettings(etcdJSON)
        nodeName = hostName
        if let value = object["name"] { name = try Self.name(value, field: "cluster.name") }
        if let value = object["node-name"] { nodeName = try Self.name(value, field: "cluster.node-name") }
        if let value = object["node-address"] {
            let text = try value.requireString("cluster.node-address")
            guard let address = IPAddress(text), address.family == .ipv4 else {
                throw AgentError.invalidField("cluster.node-address", "expected an IPv4 address, got \"\(text)\"")
            }
            nodeAddress = address
        }
        if let value = object["identity-gc-interval"] {
            identityGCIntervalMilliseconds = try ConfigDuration.milliseconds(
                value, field: "cluster.identity-gc-interval", range: Self.identityGCRange)
        }
        if let value = object["identity-gc-grace"] {
            identityGCGraceMilliseconds = try ConfigDuration.milliseconds(
                value, field: "cluster.identity-gc-grace", range: Self.identityGCRange)
        }
    }

    /// How long an identity stays unreferenced before it is released.
    public var identityGCGrace: Duration {
        .milliseconds(identityGCGraceMilliseconds ?? identityGCIntervalMilliseconds)
    }

    /// Names go into etcd keys and Kubernetes-style objects: a DNS subdomain (lower-case letters, digits, `-`, `.`).
    static func name(_ value: JSON, field: String) throws(AgentError) -> String {
        let text = try value.requireString(field)
        let allowed = text.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        }
        guard !text.isEmpty, text.utf8.count <= 253, allowed, text.first != "-", text.last != "-" else {
            throw AgentError.invalidField(
                field, "expected a DNS name (lower-case letters, digits, '-', '.'; at most 253), got \"\(text)\"")
        }
        return text
    }

    static func etcdSettings(_ json: JSON) throws(AgentError) -> EtcdSettings {
        let object = try json.requireObject("cluster.etcd")
        try KnownKeys.check(object.keys, known: etcdKeys, prefix: "cluster.etcd", kind: "etcd option")
        guard let list = object["endpoints"] else {
            throw AgentError.invalidField("cluster.etcd.endpoints", "missing: at least one etcd client URL")
        }
        let items = try list.requireArray("cluster.etcd.endpoints")
        guard !items.isEmpty else {
            throw AgentError.invalidField("cluster.etcd.endpoints", "expected at least one etcd client URL")
        }
        var endpoints: [String] = []
        for (index, item) in items.enumerated() {
            endpoints.append(try endpoint(item, field: "cluster.etcd.endpoints[\(index)]"))
        }
        var settings = EtcdSettings(endpoints: endpoints)
        settings.caFile = try object["ca-file"].map { value throws(AgentError) in
            try file(value, "cluster.etcd.ca-file")
        }
        settings.certFile = try object["cert-file"].map { value throws(AgentError) in
            try file(value, "cluster.etcd.cert-file")
        }
        settings.keyFile = try object["key-file"].map { value throws(AgentError) in
            try file(value, "cluster.etcd.key-file")
        }
        if (settings.certFile == nil) != (settings.keyFile == nil) {
            let missing = settings.certFile == nil ? "cert-file" : "key-file"
            throw AgentError.invalidField(
                "cluster.etcd.\(missing)", "a client certificate needs both cert-file and key-file")
        }
        if let value = object["lease-ttl"] {
            settings.leaseTTLSeconds = try ConfigDuration.seconds(
                value, field: "cluster.etcd.lease-ttl", range: leaseTTLRange)
        }
        let usesTLS = endpoints.contains { $0.hasPrefix("https://") }
        if !usesTLS, settings.caFile != nil || settings.certFile != nil {
            throw AgentError.invalidField(
                "cluster.etcd.endpoints", "TLS files are given but no endpoint is https://; they would not be used")
        }
        return settings
    }

    /// `http://host:port` or `https://host:port`, host a name, an IPv4 address or `[IPv6]`.
    static func endpoint(_ value: JSON, field: String) throws(AgentError) -> String {
        let text = try value.requireString(field)
        guard let url = URLComponents(string: text), let scheme = url.scheme, scheme == "http" || scheme == "https",
            let host = url.host, !host.isEmpty, url.port != nil, url.path.isEmpty || url.path == "/",
            url.query == nil, url.user == nil
        else {
            throw AgentError.invalidField(
                field, "expected an etcd client URL like \"http://10.0.0.2:2379\", got \"\(text)\"")
        }
        return text.hasSuffix("/") ? String(text.dropLast()) : text
    }

    static func file(_ value: JSON, _ field: String) throws(AgentError) -> String {
        let path = try value.requireString(field)
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw AgentError.invalidField(field, "cannot read \(path)")
        }
        return path
    }

    /// The TLS files for `https://` endpoints; nil when none are given.
    public var tls: TLSFiles? {
        guard etcd.caFile != nil || etcd.certFile != nil else { return nil }
        return TLSFiles(caFile: etcd.caFile, certFile: etcd.certFile, keyFile: etcd.keyFile)
    }

    /// The section as the agent reports it (`GET /v1/config`, healthz): no secrets are in it, only file paths.
    public var json: JSON {
        var etcdObject: [String: JSON] = [
            "endpoints": .array(etcd.endpoints.map { .string($0) }),
            "lease-ttl": .string(ConfigDuration.text(milliseconds: etcd.leaseTTLSeconds * 1000)),
        ]
        if let caFile = etcd.caFile { etcdObject["ca-file"] = .string(caFile) }
        if let certFile = etcd.certFile { etcdObject["cert-file"] = .string(certFile) }
        if let keyFile = etcd.keyFile { etcdObject["key-file"] = .string(keyFile) }
        var object: [String: JSON] = [
            "name": .string(name), "node-name": .string(nodeName), "etcd": .object(etcdObject),
            "identity-gc-interval": .string(ConfigDuration.text(milliseconds: identityGCIntervalMilliseconds)),
            "identity-gc-grace": .string(
                ConfigDuration.text(milliseconds: identityGCGraceMilliseconds ?? identityGCIntervalMilliseconds)),
        ]
        if let nodeAddress { object["node-address"] = .string(nodeAddress.description) }
        return .object(object)
    }
}
