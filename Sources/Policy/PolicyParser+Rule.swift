import AgentAPI

extension PolicyParser {
    static let ruleFields: Set<String> = [
        "endpointSelector", "ingress", "ingressDeny", "egress", "egressDeny", "labels", "description",
        "enableDefaultDeny",
    ]

    static let ruleUnsupported: [String: String] = [
        "nodeSelector": "nodeSelector (host policy) is not supported; select endpoints with endpointSelector"
    ]

    /// One rule. In a namespaced policy the endpoint selector always gets the namespace (see `confine`), and
    /// `warnings` gets what that changed.
    static func rule(
        _ r: FieldReader, name: String, namespace: String?, warnings: inout [String]
    ) throws(AgentError) -> PolicyRule {
        _ = try r.object(allowed: ruleFields, unsupported: ruleUnsupported)
        let selectorField = try r.required("endpointSelector")
        var endpointSelector = try selector(selectorField)
        if let namespace {
            endpointSelector = confine(endpointSelector, to: namespace, path: selectorField.path, warnings: &warnings)
        }
        var sections: [Direction: [Bool: [PolicyItem]]] = [:]
        for direction in Direction.allCases {
            for deny in [false, true] {
                let key = PolicyRule.sectionName(direction, deny: deny)
                guard let section = r.child(key) else { continue }
                var items: [PolicyItem] = []
                for element in try section.array() {
                    items.append(try item(element, direction: direction, deny: deny, namespace: namespace))
                }
                sections[direction, default: [:]][deny] = items
            }
        }
        if sections.isEmpty {
            throw r.error("a rule needs at least one of ingress, ingressDeny, egress or egressDeny")
        }
        var defaultDeny: [Direction: Bool] = [:]
        if let enable = r.child("enableDefaultDeny") {
            _ = try enable.object(allowed: ["ingress", "egress"])
            for direction in Direction.allCases {
                if let flag = enable.child(direction.description) { defaultDeny[direction] = try flag.bool() }
            }
        }
        return PolicyRule(
            path: name, endpointSelector: endpointSelector,
            ingress: sections[.ingress]?[false], ingressDeny: sections[.ingress]?[true],
            egress: sections[.egress]?[false], egressDeny: sections[.egress]?[true],
            defaultDenyIngress: defaultDeny[.ingress] ?? true, defaultDenyEgress: defaultDeny[.egress] ?? true,
            labels: try ruleLabels(r.child("labels")), description: try r.child("description")?.string())
    }

    /// `k8s:io.kubernetes.pod.namespace=<namespace>`.
    static func namespaceRequirement(_ namespace: String) -> SelectorRequirement {
        SelectorRequirement(source: "k8s", key: namespaceLabelKey, op: .in, values: [namespace])
    }

    /// Rule labels, as strings (`k8s:team=x`) or as Cilium writes them (`{"key": ..., "value": ..., "source": ...}`).
    static func ruleLabels(_ field: FieldReader?) throws(AgentError) -> LabelSet {
        guard let field else { return LabelSet() }
        var labels: [Label] = []
        for element in try field.array() {
            if case .string(let text) = element.value {
                labels.append(
                    try contextual(element) { () throws(AgentError) in
                        try Label(parsing: text, field: element.path)
                    })
                continue
            }
            _ = try element.object(allowed: ["key", "value", "source"])
            let key = try element.required("key").string()
            let value = try element.child("value")?.string() ?? ""
            let source = try element.child("source")?.string() ?? Label.unspecifiedSource
            labels.append(
                try contextual(element) { () throws(AgentError) in
                    try Label(source: source, key: key, value: value, field: element.path)
                })
        }
        return LabelSet(labels)
    }

    /// Runs `body`, giving an error it throws the document's name as the other parse errors have.
    static func contextual<T>(_ at: FieldReader, _ body: () throws(AgentError) -> T) throws(AgentError) -> T {
        do {
            return try body()
        } catch {
            guard let context = at.context else { throw error }
            var error = error
            error.message = "\(context): \(error.message)"
            throw error
        }
    }
}
