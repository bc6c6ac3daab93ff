import AgentAPI

/// Reads Kubernetes NetworkPolicy (`networking.k8s.io/v1`) documents into the same rule model as
/// CiliumNetworkPolicies, with Kubernetes' semantics where the two differ:
///
/// - `podSelector` selects pods of the policy's namespace (`{}`: all of them).
/// - `policyTypes` says which directions the selected pods are isolated in. Absent, it is Ingress, plus Egress
///   when `egress` has rules (as the API server defaults it). A listed direction without rules denies everything
///   in that direction; a direction not listed is not isolated, and its rules, if any, are ignored with a
///   warning, as the API server's defaulting leaves them.
/// - A rule without peers (`from`/`to` absent or empty) allows every peer, world included; a rule without ports
///   allows every port and protocol.
/// - Policies are a union of allows: they compile to allow sections only, never deny sections.
///
/// Unknown fields are refused by name, as for CiliumNetworkPolicies.
public enum NetworkPolicyParser {
    public static let apiVersion = "networking.k8s.io/v1"
    static let kind = PolicyDocument.Kind.networkPolicy

    /// One document whose apiVersion is `networking.k8s.io/v1`; `path` prefixes every field in errors.
    public static func parseDocument(_ json: JSON, path: String = "") throws(AgentError) -> PolicyDocument {
        let root = FieldReader(json, path: path)
        _ = try root.object(allowed: ["apiVersion", "kind", "metadata", "spec", "status"])
        let kindText = try root.required("kind").string()
        guard kindText == kind.rawValue else {
            throw root.error(
                "expected \"NetworkPolicy\" for \(apiVersion), got \(quoted(kindText))",
                at: FieldReader.join(path, "kind"))
        }
        let key = try PolicyParser.metadata(root.required("metadata"), kind: kind)
        let namespace = key.namespace ?? PolicyParser.defaultNamespace
        let doc = root.withContext(key.description)
        var warnings: [String] = []
        let rule = try self.rule(doc.required("spec"), namespace: namespace, warnings: &warnings)
        var document = PolicyDocument(kind: kind, key: key, rules: [rule], json: json)
        document.warnings = warnings.map { "\(key): \($0)" }
        return document
    }

    /// `spec`: one rule whose endpoint selector is the pod selector confined to the namespace.
    static func rule(_ spec: FieldReader, namespace: String, warnings: inout [String]) throws(AgentError)
        -> PolicyRule
    {
        _ = try spec.object(allowed: ["podSelector", "policyTypes", "ingress", "egress"])
        // The API requires podSelector but a YAML that leaves it out decodes to `{}`: every pod of the namespace.
        let podSelector = try spec.child("podSelector").map { (r) throws(AgentError) in try PolicyParser.selector(r) }
        let endpointSelector = (podSelector ?? .all).adding(PolicyParser.namespaceRequirement(namespace))
        var sections: [Direction: [PolicyItem]] = [:]
        var present: [Direction: FieldReader] = [:]
        for direction in Direction.allCases {
            guard let field = spec.child(direction.description) else { continue }
            present[direction] = field
            var items: [PolicyItem] = []
            for element in try field.array() {
                items.append(try item(element, direction: direction, namespace: namespace))
            }
            sections[direction] = items
        }
        let types = try policyTypes(spec.child("policyTypes"), egressRules: !(sections[.egress] ?? []).isEmpty)
        for direction in Direction.allCases where !types.contains(direction) {
            if let field = present[direction], !(sections[direction] ?? []).isEmpty {
                warnings.append(
                    "\(field.path): ignored: policyTypes does not list \(typeName(direction)), so the selected pods "
                        + "are not isolated for \(direction)")
            }
            sections[direction] = nil
        }
        for direction in types where sections[direction] == nil { sections[direction] = [] }
        return PolicyRule(
            path: "spec", endpointSelector: endpointSelector, ingress: sections[.ingress], egress: sections[.egress])
    }

    /// `Ingress`/`Egress` as policyTypes spells them.
    static func typeName(_ direction: Direction) -> String { direction == .ingress ? "Ingress" : "Egress" }

    /// The directions a policy isolates: `policyTypes` as listed, or its default.
    static func policyTypes(_ field: FieldReader?, egressRules: Bool) throws(AgentError) -> Set<Direction> {
        guard let field else { return egressRules ? [.ingress, .egress] : [.ingress] }
        var types: Set<Direction> = []
        for element in try field.array() {
            let text = try element.string()
            guard let direction = Direction.allCases.first(where: { typeName($0) == text }) else {
                throw element.error("policy type \(quoted(text)) is unknown (expected Ingress or Egress)")
            }
            guard types.insert(direction).inserted else { throw element.error("\(text) is listed twice") }
        }
        if types.isEmpty { throw field.error("expected Ingress, Egress or both") }
        return types
    }

    /// One `ingress` (`from`, `ports`) or `egress` (`to`, `ports`) rule.
    static func item(_ r: FieldReader, direction: Direction, namespace: String) throws(AgentError) -> PolicyItem {
        let peersKey = direction == .ingress ? "from" : "to"
        let other = direction == .ingress ? "to" : "from"
        _ = try r.object(
            allowed: [peersKey, "ports"], hint: [other: "\(direction) rules list their peers in \(peersKey)"])
        var item = PolicyItem()
        let peers = try r.child(peersKey)?.array() ?? []
        if peers.isEmpty {
            item.entities = [.all]
        } else {
            for peer in peers { try add(peer, to: &item, namespace: namespace) }
        }
        if let field = r.child("ports") {
            let elements = try field.array()
            if !elements.isEmpty {
                var ports: [PortSpec] = []
                for element in elements { ports.append(try port(element)) }
                item.ports = ports
            }
        }
        return item
    }
}
