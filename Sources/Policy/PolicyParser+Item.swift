import AgentAPI

extension PolicyParser {
    /// Peer and port fields of an item, by direction.
    static func itemFields(_ direction: Direction) -> Set<String> {
        let p = direction == .ingress ? "from" : "to"
        let peers = ["\(p)Endpoints", "\(p)CIDR", "\(p)CIDRSet", "\(p)Entities", "toPorts"]
        return Set(direction == .egress ? peers + ["toServices"] : peers)
    }

    /// Fields Cilium has that this agent does not enforce, with the reason given to the user.
    static func itemUnsupported(_ direction: Direction) -> [String: String] {
        var reasons: [String: String] = [
            "icmps": "icmps (ICMP type rules) is not supported; allow ICMP with a rule without toPorts",
            "authentication": "authentication (mutual authentication) is not supported",
        ]
        switch direction {
        case .ingress:
            reasons["fromRequires"] = "fromRequires is not supported (deprecated in Cilium)"
            reasons["fromNodes"] = "fromNodes is not supported; use fromEntities host"
        case .egress:
            reasons["toRequires"] = "toRequires is not supported (deprecated in Cilium)"
            reasons["toNodes"] = "toNodes is not supported; use toEntities host"
            reasons["toFQDNs"] = "toFQDNs (DNS-name peers) is not supported; use toCIDR or toCIDRSet"
            reasons["toGroups"] = "toGroups (cloud-provider groups) is not supported"
        }
        return reasons
    }

    /// Hints for a field of the other direction used by mistake (`toEndpoints` in an ingress item).
    static func itemHints(_ direction: Direction) -> [String: String] {
        let (mine, other) = direction == .ingress ? ("from", "to") : ("to", "from")
        var hints: [String: String] = [:]
        for suffix in ["Endpoints", "CIDR", "CIDRSet", "Entities"] {
            hints[other + suffix] = "\(direction) items use \(mine)\(suffix)"
        }
        return hints
    }

    /// A list of peer selectors (`fromEndpoints`, `toEndpoints`, an HTTP rule's own `fromEndpoints`). A selector
    /// that says nothing about the namespace means the policy's own namespace.
    static func peerSelectors(_ field: FieldReader, namespace: String?) throws(AgentError) -> [LabelSelector] {
        var selectors: [LabelSelector] = []
        for element in try field.array() {
            var selector = try selector(element)
            if let namespace, !selector.mentions(key: namespaceLabelKey) {
                selector = selector.adding(namespaceRequirement(namespace))
            }
            selectors.append(selector)
        }
        return selectors
    }

    /// One element of a section: peers and ports. Deny sections take the same peers and ports; HTTP rules are
    /// taken in ingress allow sections only (see `httpRules`).
    static func item(_ r: FieldReader, direction: Direction, deny: Bool, namespace: String?) throws(AgentError)
        -> PolicyItem
    {
        _ = try r.object(
            allowed: itemFields(direction), unsupported: itemUnsupported(direction), hint: itemHints(direction))
        let p = direction == .ingress ? "from" : "to"
        var item = PolicyItem()
        if let field = r.child("\(p)Endpoints") { item.endpoints = try peerSelectors(field, namespace: namespace) }
        if let field = r.child("\(p)CIDR") {
            var cidrs: [IPPrefix] = []
            for element in try field.array() { cidrs.append(try cidr(element)) }
            item.cidrs = cidrs
        }
        if let field = r.child("\(p)CIDRSet") {
            var sets: [CIDRPeer] = []
            for element in try field.array() { sets.append(try cidrSet(element)) }
            item.cidrSets = sets
        }
        if let field = r.child("\(p)Entities") {
            var entities: [Entity] = []
            for element in try field.array() { entities.append(try entity(element)) }
            item.entities = entities
        }
        if direction == .egress, let field = r.child("toServices") {
            var services: [ServiceReference] = []
            for element in try field.array() { services.append(try serviceReference(element, namespace: namespace)) }
            item.services = services
        }
        if let field = r.child("toPorts") {
            item.ports = try portRules(field, direction: direction, deny: deny, namespace: namespace)
        }
        return item
    }

    static func cidr(_ r: FieldReader) throws(AgentError) -> IPPrefix {
        let text = try r.string()
        do {
            return try IPPrefix(parsing: text)
        } catch {
            throw r.error("\(quoted(text)) \(error.reason)")
        }
    }

    /// `{cidr, except}`: every exception must lie inside the prefix.
    static func cidrSet(_ r: FieldReader) throws(AgentError) -> CIDRPeer {
        _ = try r.object(
            allowed: ["cidr", "except"],
            unsupported: [
                "cidrGroupRef": "cidrGroupRef (CiliumCIDRGroup) is not supported; list the prefixes",
                "cidrGroupSelector": "cidrGroupSelector (CiliumCIDRGroup) is not supported; list the prefixes",
            ])
        let prefix = try cidr(r.required("cidr"))
        var except: [IPPrefix] = []
        if let field = r.child("except") {
            for element in try field.array() {
                let inner = try cidr(element)
                guard prefix.contains(inner) else {
                    throw element.error("\(inner) is not inside \(prefix)")
                }
                except.append(inner)
            }
        }
        return CIDRPeer(cidr: prefix, except: except)
    }

    /// `{k8sService: {serviceName, namespace}}`; the namespace defaults to the policy's own, and a cluster-wide
    /// policy must name it.
    static func serviceReference(_ r: FieldReader, namespace: String?) throws(AgentError) -> ServiceReference {
        _ = try r.object(
            allowed: ["k8sService"],
            unsupported: [
                "k8sServiceSelector":
                    "k8sServiceSelector is not supported: services carry no labels here; name one with k8sService"
            ])
        let service = try r.required("k8sService")
        _ = try service.object(allowed: ["serviceName", "namespace"])
        let nameField = try service.required("serviceName")
        let name = try nameField.string()
        guard !name.isEmpty else { throw nameField.error("must not be empty") }
        if let field = service.child("namespace") {
            let given = try field.string()
            guard !given.isEmpty else { throw field.error("must not be empty") }
            return ServiceReference(name: name, namespace: given)
        }
        guard let namespace else {
            throw service.error("namespace is required in a cluster-wide policy (it has no namespace of its own)")
        }
        return ServiceReference(name: name, namespace: namespace)
    }

    /// Entities Cilium knows that this agent does not enforce.
    static let unsupportedEntities: Set<String> = [
        "remote-node", "kube-apiserver", "ingress", "init", "health", "unmanaged", "none", "world-ipv4", "world-ipv6",
    ]

    static func entity(_ r: FieldReader) throws(AgentError) -> Entity {
        let name = try r.string()
        if let entity = Entity(rawValue: name) { return entity }
        let supported = Entity.allCases.map(\.rawValue).sorted().joined(separator: ", ")
        let verdict = unsupportedEntities.contains(name) ? "is not supported" : "is unknown"
        throw r.error("entity \(quoted(name)) \(verdict) (supported: \(supported))")
    }
}
