import AgentAPI

extension NetworkPolicyParser {
    /// Cilium's convention: a namespace's label `<key>=<value>` reaches the agent as the endpoint label
    /// `k8s:io.cilium.k8s.namespace.labels.<key>=<value>` on every pod of the namespace.
    public static let namespaceLabelPrefix = "io.cilium.k8s.namespace.labels."
    /// The label Kubernetes sets on every namespace to its name. It is not expected among the endpoint's namespace
    /// labels: a namespaceSelector's match on it is read as a match on the pod's namespace label, which every pod
    /// carries and which cannot disagree with the namespace's name.
    public static let namespaceNameLabel = "kubernetes.io/metadata.name"

    /// One peer: `podSelector`, `namespaceSelector`, both (ANDed), or `ipBlock` (alone). Peers of one rule are
    /// ORed, so each adds to the item's selectors or CIDR sets.
    static func add(_ peer: FieldReader, to item: inout PolicyItem, namespace: String) throws(AgentError) {
        _ = try peer.object(allowed: ["podSelector", "namespaceSelector", "ipBlock"])
        let pods = peer.child("podSelector")
        let namespaces = peer.child("namespaceSelector")
        if let block = peer.child("ipBlock") {
            guard pods == nil, namespaces == nil else {
                throw block.error("ipBlock cannot be combined with podSelector or namespaceSelector in one peer")
            }
            item.cidrSets = (item.cidrSets ?? []) + [try ipBlock(block)]
            return
        }
        guard pods != nil || namespaces != nil else {
            throw peer.error("a peer needs podSelector, namespaceSelector or ipBlock")
        }
        var requirements: [SelectorRequirement] = []
        if let pods { requirements += try PolicyParser.selector(pods).requirements }
        if let namespaces {
            requirements += try namespaceRequirements(PolicyParser.selector(namespaces))
        } else {
            requirements.append(PolicyParser.namespaceRequirement(namespace))
        }
        item.endpoints = (item.endpoints ?? []) + [LabelSelector(requirements: requirements)]
    }

    /// A namespaceSelector as requirements on pods' labels: each key becomes the namespace label's endpoint key,
    /// `kubernetes.io/metadata.name` the pod's namespace, and the pod must have a namespace (so `{}` is every pod
    /// of the cluster, never the world or the node).
    static func namespaceRequirements(_ selector: LabelSelector) -> [SelectorRequirement] {
        var requirements = [
            SelectorRequirement(source: "k8s", key: PolicyParser.namespaceLabelKey, op: .exists)
        ]
        for requirement in selector.requirements {
            let key =
                requirement.key == namespaceNameLabel
                ? PolicyParser.namespaceLabelKey : namespaceLabelPrefix + requirement.key
            requirements.append(
                SelectorRequirement(source: "k8s", key: key, op: requirement.op, values: requirement.values))
        }
        return requirements
    }

    /// `{cidr, except}`: the CIDR set of a CiliumNetworkPolicy, which also selects the pods it covers.
    static func ipBlock(_ r: FieldReader) throws(AgentError) -> CIDRPeer {
        _ = try r.object(allowed: ["cidr", "except"])
        var peer = try PolicyParser.cidrSet(r)
        peer.selectsPods = true
        return peer
    }

    /// `{protocol, port, endPort}`: the protocol defaults to TCP; no port is every port of the protocol; a string
    /// port is a port name, resolved against the destination pod's named ports.
    static func port(_ r: FieldReader) throws(AgentError) -> PortSpec {
        _ = try r.object(allowed: ["protocol", "port", "endPort"])
        var proto = L4Protocol.tcp
        if let field = r.child("protocol") {
            let text = try field.string()
            guard let value = L4Protocol(rawValue: text), value != .any else {
                throw field.error("protocol \(quoted(text)) is not supported (expected TCP, UDP or SCTP)")
            }
            proto = value
        }
        var port: UInt16 = 0
        if let field = r.child("port") {
            if case .string(let name) = field.value {
                if let problem = NamedPort.nameProblem(name) {
                    throw field.error("port name \(quoted(name)) \(problem)")
                }
                if let end = r.child("endPort") { throw end.error("endPort cannot follow a named port") }
                return PortSpec(name: name, proto: proto)
            }
            port = try PolicyParser.portNumber(field, name: "port")
            guard port != 0 else { throw field.error("port must be between 1 and 65535") }
        }
        var endPort: UInt16?
        if let field = r.child("endPort") {
            let value = try PolicyParser.portNumber(field, name: "endPort")
            guard port != 0 else { throw field.error("endPort needs port to start the range") }
            guard value >= port else { throw field.error("endPort \(value) is below port \(port)") }
            endPort = value
        }
        return PortSpec(port: port, endPort: endPort, proto: proto)
    }
}
