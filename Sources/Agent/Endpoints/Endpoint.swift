import DatapathCore
import Policy

/// A pod wired to this node: its host-side interface, addresses, labels and what the agent realized for it.
struct Endpoint: Sendable, Equatable {
    enum State: String, Sendable {
        case waitingForIdentity = "waiting-for-identity"
        case regenerating
        case ready
    }

    var id: UInt32
    var interfaceName: String
    var ifindex: Int32
    var ipv4: IPAddress?
    var ipv6: IPAddress?
    /// All labels as given; the identity uses the security-relevant subset.
    var labels: LabelSet
    var k8sNamespace: String?
    var k8sPodName: String?
    var containerID: String?
    var identity: UInt32
    var state: State
    var policyRevision: UInt64
    var enforceIngress: Bool
    var enforceEgress: Bool
    /// Moves (to a number no endpoint had before) exactly when the endpoint's policy map or enforcement changes;
    /// the datapath re-checks a conntrack entry against policy only when this moved since the entry was allowed.
    /// 0 until the first regeneration; a restored endpoint starts from its row's (and its row's enforcement flags).
    var policyGeneration: UInt32 = 0
    /// The pod's port names (`named-ports`), which named ports in policies resolve against.
    var namedPorts: [NamedPort] = []

    var addresses: [IPAddress] { [ipv4, ipv6].compactMap { $0 } }

    /// "namespace/pod" when the pod is known.
    var podName: String? {
        guard let k8sPodName else { return nil }
        return "\(k8sNamespace ?? "default")/\(k8sPodName)"
    }

    func json(identityLabels: LabelSet?) -> JSON {
        var addressing: [String: JSON] = [:]
        if let ipv4 { addressing["ipv4"] = .string(ipv4.description) }
        if let ipv6 { addressing["ipv6"] = .string(ipv6.description) }
        var object: [String: JSON] = [
            "id": .int(Int64(id)), "interface-name": .string(interfaceName), "interface-index": .int(Int64(ifindex)),
            "addressing": .object(addressing), "labels": .array(labels.strings.map { .string($0) }),
            "state": .string(state.rawValue), "policy-revision": .int(Int64(policyRevision)),
            "identity": [
                "id": .int(Int64(identity)), "labels": .array((identityLabels?.strings ?? []).map { .string($0) }),
            ],
            "policy-enforcement": ["ingress": .bool(enforceIngress), "egress": .bool(enforceEgress)],
        ]
        if let k8sNamespace { object["k8s-namespace"] = .string(k8sNamespace) }
        if let k8sPodName { object["k8s-pod-name"] = .string(k8sPodName) }
        if let containerID { object["container-id"] = .string(containerID) }
        if !namedPorts.isEmpty { object["named-ports"] = NamedPort.json(namedPorts) }
        return .object(object)
    }
}

/// The body of `PUT /v1/endpoint/{id}`, Cilium's EndpointChangeRequest field names, validated.
struct EndpointChangeRequest: Sendable, Equatable {
    var interfaceName: String
    var ipv4: IPAddress?
    var ipv6: IPAddress?
    var labels: LabelSet
    var k8sNamespace: String?
    var k8sPodName: String?
    var containerID: String?
    var namedPorts: [NamedPort]

    static let knownFields: Set<String> = [
        "id", "interface-name", "interface-index", "addressing", "labels", "k8s-namespace", "k8s-pod-name",
        "named-ports",
        "container-id", "state", "mac", "host-mac", "sync-build-endpoint", "datapath-configuration", "policy-enabled",
        "container-name", "pod-name", "netns", "docker-endpoint-id", "docker-network-id",
    ]
    static let maxLabels = 256

    init(json: JSON, id: UInt32) throws {
        guard let object = json.objectValue else {
            throw AgentError.invalidField("body", "expected an EndpointChangeRequest object, got \(json.typeName)")
        }
        try KnownKeys.check(object.keys, known: Self.knownFields, kind: "field of EndpointChangeRequest")
        if let bodyID = object["id"], !bodyID.isNull {
            guard bodyID.intValue == Int64(id) else {
                throw AgentError.invalidField("id", "does not match the id \(id) in the path")
            }
        }
        guard let name = object["interface-name"] else {
            throw AgentError.invalidField("interface-name", "is required")
        }
        interfaceName = try name.requireString("interface-name")
        guard !interfaceName.isEmpty, interfaceName.utf8.count < 16, !interfaceName.contains("/"),
            !interfaceName.contains(where: \.isWhitespace)
        else {
            throw AgentError.invalidField("interface-name", "\"\(interfaceName)\" is not a valid interface name")
        }
        let addressing = try object["addressing"]?.requireObject("addressing") ?? [:]
        try KnownKeys.check(
            addressing.keys, known: ["ipv4", "ipv6", "ipv4-expiration-uuid", "ipv6-expiration-uuid"],
            prefix: "addressing", kind: "field")
        ipv4 = try Self.address(addressing["ipv4"], field: "addressing.ipv4", family: .ipv4)
        ipv6 = try Self.address(addressing["ipv6"], field: "addressing.ipv6", family: .ipv6)
        guard ipv4 != nil || ipv6 != nil else {
            throw AgentError.invalidField("addressing", "needs an ipv4 or ipv6 address")
        }
        let labelItems = try object["labels"]?.requireArray("labels") ?? []
        guard labelItems.count <= Self.maxLabels else {
            throw AgentError.invalidField("labels", "\(labelItems.count) labels, at most \(Self.maxLabels) allowed")
        }
        let texts = try labelItems.enumerated().map { index, item in try item.requireString("labels[\(index)]") }
        k8sNamespace = try Self.optionalString(object["k8s-namespace"], "k8s-namespace")
        k8sPodName = try Self.optionalString(object["k8s-pod-name"], "k8s-pod-name")
        containerID = try Self.optionalString(object["container-id"], "container-id")
        namedPorts = try NamedPort.parseList(object["named-ports"])
        // The labels become the identity: no reserved label, and the namespace is the one k8s-namespace says, as
        // Cilium derives it from the pod.
        labels = try EndpointLabels.parse(texts, namespace: k8sNamespace, field: "labels")
    }

    static func address(_ value: JSON?, field: String, family: IPAddress.Family) throws -> IPAddress? {
        guard let value, !value.isNull else { return nil }
        let text = try value.requireString(field)
        guard let address = IPAddress(text), address.family == family else {
            throw AgentError.invalidField(field, "\"\(text)\" is not an \(family == .ipv4 ? "IPv4" : "IPv6") address")
        }
        return address
    }

    static func optionalString(_ value: JSON?, _ field: String) throws -> String? {
        guard let value, !value.isNull else { return nil }
        let text = try value.requireString(field)
        guard text.utf8.count <= 253 else { throw AgentError.invalidField(field, "longer than 253 characters") }
        return text.isEmpty ? nil : text
    }
}
