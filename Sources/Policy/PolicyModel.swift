import AgentAPI

/// Direction of traffic from an endpoint's point of view; raw values are the datapath's `enum na_direction`.
public enum Direction: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case ingress = 0
    case egress = 1

    public var description: String { self == .ingress ? "ingress" : "egress" }
}

/// A peer entity this agent can enforce.
public enum Entity: String, Sendable, CaseIterable {
    /// Any peer at all: identity 0 in a policy entry.
    case all
    /// Every identity inside the cluster: endpoints and the in-cluster reserved identities.
    case cluster
    /// The local node.
    case host
    /// Everything outside the cluster: reserved world and every CIDR identity.
    case world
}

/// Layer-4 protocol of a port rule.
public enum L4Protocol: String, Sendable, CaseIterable {
    case tcp = "TCP"
    case udp = "UDP"
    case sctp = "SCTP"
    case any = "ANY"

    /// IP protocol numbers a port rule of this protocol stands for.
    public var numbers: [UInt8] {
        switch self {
        case .tcp: return [6]
        case .udp: return [17]
        case .sctp: return [132]
        case .any: return [6, 17, 132]
        }
    }
}

/// One `toPorts[].ports[]` element: a port or a port range of a protocol, or a port name.
public struct PortSpec: Hashable, Sendable {
    /// 0: every port (or a named port, see `name`).
    public var port: UInt16
    /// Last port of a range; nil for a single port.
    public var endPort: UInt16?
    public var proto: L4Protocol
    /// A named port (`http`): its number is the one the destination pod gives that name (see `NamedPort`), so it
    /// is resolved per endpoint when compiling; a name no pod defines allows nothing.
    public var name: String?
    /// The `rules.http` of the `toPorts` element the port is in: requests to the port must match one of them.
    /// nil: no HTTP rules, every connection the port allows carries any request.
    public var http: [HTTPRule]?

    public init(port: UInt16, endPort: UInt16? = nil, proto: L4Protocol = .any) {
        self.port = port
        self.endPort = endPort
        self.proto = proto
    }

    public init(name: String, proto: L4Protocol) {
        self.init(port: 0, proto: proto)
        self.name = name
    }

    /// The ports covered.
    public var range: ClosedRange<UInt16> { port == 0 ? 0...UInt16.max : port...(endPort ?? port) }
}

/// A `fromCIDRSet`/`toCIDRSet` element: a prefix minus exceptions inside it.
public struct CIDRPeer: Hashable, Sendable {
    public var cidr: IPPrefix
    public var except: [IPPrefix]
    /// A NetworkPolicy's `ipBlock` also selects the pods whose addresses it covers, as Kubernetes requires; a
    /// CiliumNetworkPolicy's CIDR peers select addresses outside the cluster only, as in Cilium.
    public var selectsPods: Bool

    public init(cidr: IPPrefix, except: [IPPrefix] = [], selectsPods: Bool = false) {
        self.cidr = cidr
        self.except = except
        self.selectsPods = selectsPods
    }

    /// True when `address` is in the prefix and in none of its exceptions.
    public func covers(_ address: IPAddress) -> Bool {
        cidr.contains(address) && !except.contains { $0.contains(address) }
    }
}

/// A `toServices[].k8sService` element: a service by name and namespace (the `flags.name` and `flags.namespace`
/// of a service in `/v1/service`). It selects the service's backends, whatever their addresses are at the time.
public struct ServiceReference: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var namespace: String

    public init(name: String, namespace: String) {
        self.name = name
        self.namespace = namespace
    }

    public var description: String { "\(namespace)/\(name)" }
}

/// One element of an `ingress`, `egress`, `ingressDeny` or `egressDeny` section: peers and ports.
///
/// A nil peer list is absent from the document; an empty one is present and selects nothing.
public struct PolicyItem: Hashable, Sendable {
    /// `fromEndpoints` / `toEndpoints`, with the policy's namespace already added where it applies.
    public var endpoints: [LabelSelector]?
    /// `fromCIDR` / `toCIDR`.
    public var cidrs: [IPPrefix]?
    /// `fromCIDRSet` / `toCIDRSet`.
    public var cidrSets: [CIDRPeer]?
    /// `fromEntities` / `toEntities`.
    public var entities: [Entity]?
    /// `toServices` (egress only).
    public var services: [ServiceReference]?
    /// The `toPorts[].ports[]` elements, flattened; nil when `toPorts` is absent (every port and protocol).
    public var ports: [PortSpec]?

    public init(
        endpoints: [LabelSelector]? = nil, cidrs: [IPPrefix]? = nil, cidrSets: [CIDRPeer]? = nil,
        entities: [Entity]? = nil, services: [ServiceReference]? = nil, ports: [PortSpec]? = nil
    ) {
        self.endpoints = endpoints
        self.cidrs = cidrs
        self.cidrSets = cidrSets
        self.entities = entities
        self.services = services
        self.ports = ports
    }

    /// True when no peer field is present.
    public var hasNoPeerField: Bool {
        endpoints == nil && cidrs == nil && cidrSets == nil && entities == nil && services == nil
    }

    /// Ports given without peers apply to every peer; an item with neither selects nothing.
    public var selectsAnyPeer: Bool { hasNoPeerField && ports != nil }
}

/// One rule of a policy document (its `spec`, or an element of `specs`).
public struct PolicyRule: Hashable, Sendable {
    /// Where the rule is in its document: `spec` or `specs[1]`.
    public var path: String
    /// Which endpoints the rule applies to, with the policy's namespace already added.
    public var endpointSelector: LabelSelector
    public var ingress: [PolicyItem]?
    public var ingressDeny: [PolicyItem]?
    public var egress: [PolicyItem]?
    public var egressDeny: [PolicyItem]?
    /// `enableDefaultDeny`: false opts the rule out of making its direction default-deny.
    public var defaultDenyIngress: Bool
    public var defaultDenyEgress: Bool
    public var labels: LabelSet
    public var description: String?

    public init(
        path: String, endpointSelector: LabelSelector, ingress: [PolicyItem]? = nil, ingressDeny: [PolicyItem]? = nil,
        egress: [PolicyItem]? = nil, egressDeny: [PolicyItem]? = nil, defaultDenyIngress: Bool = true,
        defaultDenyEgress: Bool = true, labels: LabelSet = LabelSet(), description: String? = nil
    ) {
        self.path = path
        self.endpointSelector = endpointSelector
        self.ingress = ingress
        self.ingressDeny = ingressDeny
        self.egress = egress
        self.egressDeny = egressDeny
        self.defaultDenyIngress = defaultDenyIngress
        self.defaultDenyEgress = defaultDenyEgress
        self.labels = labels
        self.description = description
    }

    /// The allow (`deny` false) or deny section of a direction; nil when absent.
    public func section(_ direction: Direction, deny: Bool) -> [PolicyItem]? {
        switch (direction, deny) {
        case (.ingress, false): return ingress
        case (.ingress, true): return ingressDeny
        case (.egress, false): return egress
        case (.egress, true): return egressDeny
        }
    }

    /// The section's name in the document (`ingressDeny`).
    public static func sectionName(_ direction: Direction, deny: Bool) -> String {
        direction.description + (deny ? "Deny" : "")
    }

    /// True when the rule has an allow or deny section for the direction, even an empty one.
    public func hasSection(_ direction: Direction) -> Bool {
        section(direction, deny: false) != nil || section(direction, deny: true) != nil
    }

    public func defaultDeny(_ direction: Direction) -> Bool {
        direction == .ingress ? defaultDenyIngress : defaultDenyEgress
    }
}

/// Names a policy document: `namespace/name`, or just `name` for a cluster-wide one; a Kubernetes NetworkPolicy is
/// `NetworkPolicy namespace/name`, so it can share its name with a CiliumNetworkPolicy of its namespace (two
/// languages, two object kinds, as in a Kubernetes cluster).
public struct PolicyKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Nil for cluster-wide policies.
    public let namespace: String?
    public let name: String
    /// A `networking.k8s.io/v1` NetworkPolicy rather than a Cilium policy.
    public let isNetworkPolicy: Bool

    public init(namespace: String?, name: String, isNetworkPolicy: Bool = false) {
        self.namespace = namespace
        self.name = name
        self.isNetworkPolicy = isNetworkPolicy
    }

    public var description: String {
        let path = namespace.map { "\($0)/\(name)" } ?? name
        return isNetworkPolicy ? "\(PolicyDocument.Kind.networkPolicy.rawValue) \(path)" : path
    }

    public static func < (a: PolicyKey, b: PolicyKey) -> Bool {
        (a.namespace ?? "", a.name, a.isNetworkPolicy ? 1 : 0) < (b.namespace ?? "", b.name, b.isNetworkPolicy ? 1 : 0)
    }

    /// The document a delete names: `kind` picks between a CiliumNetworkPolicy and a NetworkPolicy of the same
    /// namespace and name; without it the name must be unambiguous among `existing`.
    public static func named(
        namespace: String?, name: String, kind: PolicyDocument.Kind?, in existing: some Collection<PolicyKey>
    ) throws(AgentError) -> PolicyKey {
        if let kind { return PolicyKey(namespace: namespace, name: name, isNetworkPolicy: kind == .networkPolicy) }
        let cilium = PolicyKey(namespace: namespace, name: name)
        let kubernetes = PolicyKey(namespace: namespace, name: name, isNetworkPolicy: true)
        switch (existing.contains(cilium), existing.contains(kubernetes)) {
        case (true, true):
            throw AgentError.invalidField(
                "kind",
                "both \(cilium) and \(kubernetes) exist: say which with kind=\(cilium.kindName) or "
                    + "kind=\(PolicyDocument.Kind.networkPolicy.rawValue)")
        case (false, true): return kubernetes
        default: return cilium
        }
    }

    /// The kind of document the key names.
    public var kindName: String {
        if isNetworkPolicy { return PolicyDocument.Kind.networkPolicy.rawValue }
        return (namespace == nil ? PolicyDocument.Kind.clusterwide : .namespaced).rawValue
    }
}

/// A parsed, validated policy document and the JSON it came from.
public struct PolicyDocument: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case namespaced = "CiliumNetworkPolicy"
        case clusterwide = "CiliumClusterwideNetworkPolicy"
        /// Kubernetes' own `networking.k8s.io/v1` NetworkPolicy (`NetworkPolicyParser`).
        case networkPolicy = "NetworkPolicy"
    }

    public var kind: Kind
    public var key: PolicyKey
    public var rules: [PolicyRule]
    /// What parsing changed of the document's meaning (a namespace match removed from an endpoint selector), for
    /// people: `<namespace>/<name>: <path>: <what>`.
    public var warnings: [String] = []
    /// The document as it was submitted, serialized compactly with keys sorted. Kept as text rather than as a JSON
    /// value: a value tree costs ten times the memory, and the text is only read to list or save the document.
    public let source: [UInt8]

    public init(kind: Kind, key: PolicyKey, rules: [PolicyRule], json: JSON) {
        self.kind = kind
        self.key = key
        self.rules = rules
        self.source = json.serializedBytes()
    }

    /// The document as it was submitted.
    public var json: JSON { (try? JSON.parse(source)) ?? .null }
}
