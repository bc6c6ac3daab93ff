import AgentAPI

/// `nodectl policy ...`.
public enum PolicyViews {
    /// `GET /v1/policy`: the revision and one row per stored policy.
    public static func list(_ response: JSON) -> String {
        let out = "Revision: \(Cells.text(response["revision"]))\n"
        let policies = response["policies"]?.arrayValue ?? []
        guard !policies.isEmpty else { return out + "No policies\n" }
        var table = Table(columns: ["Kind", "Namespace", "Name", "Selector", "Ingress", "Egress"])
        for policy in policies {
            let metadata = policy["metadata"]
            let spec = policy["spec"]
            let kubernetes = policy["kind"]?.stringValue == "NetworkPolicy"
            table.append([
                Cells.text(policy["kind"]), Cells.text(metadata?["namespace"]), Cells.text(metadata?["name"]),
                spec.map { selector($0[kubernetes ? "podSelector" : "endpointSelector"]) }
                    ?? specsSummary(policy["specs"]),
                spec.map { direction($0, allow: "ingress", deny: "ingressDeny") } ?? Cells.none,
                spec.map { direction($0, allow: "egress", deny: "egressDeny") } ?? Cells.none,
            ])
        }
        return out + "\n" + table.render()
    }

    /// `PUT /v1/policy` answer.
    public static func imported(_ response: JSON) -> String {
        let names = (response["policies"]?.arrayValue ?? []).map { Cells.text($0) }
        let noun = names.count == 1 ? "policy" : "policies"
        let warnings = (response["warnings"]?.arrayValue ?? []).map { "Warning: \(Cells.text($0))\n" }
        return "Imported \(names.count) \(noun) (revision \(Cells.text(response["revision"]))):\n"
            + names.map { "  \($0)\n" }.joined() + warnings.joined()
    }

    /// `DELETE /v1/policy` answer.
    public static func deleted(_ response: JSON) -> String {
        let names = (response["deleted"]?.arrayValue ?? []).map { Cells.text($0) }
        let revision = Cells.text(response["revision"])
        guard !names.isEmpty else { return "No policies matched (revision \(revision))\n" }
        let noun = names.count == 1 ? "policy" : "policies"
        return "Deleted \(names.count) \(noun) (revision \(revision)):\n" + names.map { "  \($0)\n" }.joined()
    }

    /// `GET /v1/policy/trace` answer: the verdict, its reason, and what each side's policy decided.
    public static func trace(_ response: JSON) -> String {
        var out = Cells.fieldList([
            ("Verdict", Cells.text(response["verdict"])), ("Reason", Cells.text(response["reason"])),
        ])
        for (key, title) in [("egress", "Egress (source side)"), ("ingress", "Ingress (destination side)")] {
            guard let side = response[key], !side.isNull else { continue }
            out += "\n\(title):\n"
            out += Cells.fieldList(Cells.flatten(side)).split(separator: "\n").map { "  \($0)\n" }.joined()
        }
        if let http = response["http"], !http.isNull {
            out += "\nHTTP (TCP/\(Cells.text(http["port"]))):\n"
            var fields = [("Reason", Cells.text(http["reason"]))]
            if let verdict = http["verdict"] { fields.insert(("Verdict", Cells.text(verdict)), at: 0) }
            if let request = http["request"] {
                let host = request["host"]?.stringValue.flatMap { $0.isEmpty ? nil : " (host \($0))" } ?? ""
                fields.insert(
                    ("Request", "\(Cells.text(request["method"])) \(Cells.text(request["path"]))\(host)"), at: 0)
            }
            out += Cells.fieldList(fields).split(separator: "\n").map { "  \($0)\n" }.joined()
            if http["unrestricted"]?.boolValue != true {
                out += HTTPViews.rules(http["rules"]?.arrayValue ?? []).split(separator: "\n").map { "  \($0)\n" }
                    .joined()
            }
        }
        return out
    }

    /// `matchLabels` as "k=v,k=v"; `{}` selects every endpoint.
    static func selector(_ selector: JSON?) -> String {
        guard let selector, let members = selector.objectValue else { return Cells.none }
        var parts: [String] = []
        if let labels = members["matchLabels"]?.objectValue {
            parts += labels.keys.sorted().map { "\($0)=\(Cells.text(labels[$0]))" }
        }
        if let expressions = members["matchExpressions"]?.arrayValue {
            parts += expressions.map { expression in
                let values = (expression["values"]?.arrayValue ?? []).map { Cells.text($0) }.joined(separator: ",")
                let op = Cells.text(expression["operator"])
                return "\(Cells.text(expression["key"])) \(op)" + (values.isEmpty ? "" : " (\(values))")
            }
        }
        return parts.isEmpty ? "all" : parts.joined(separator: ",")
    }

    /// "-" when neither section is present, "default deny" when present but empty, else the rule counts.
    static func direction(_ spec: JSON, allow: String, deny: String) -> String {
        let allowRules = spec[allow]?.arrayValue
        let denyRules = spec[deny]?.arrayValue
        if allowRules == nil && denyRules == nil { return Cells.none }
        let allows = allowRules?.count ?? 0
        let denies = denyRules?.count ?? 0
        if allows == 0 && denies == 0 { return "default deny" }
        var parts: [String] = []
        if allows > 0 { parts.append("\(allows) allow") }
        if denies > 0 { parts.append("\(denies) deny") }
        return parts.joined(separator: ", ")
    }

    private static func specsSummary(_ specs: JSON?) -> String {
        guard let specs = specs?.arrayValue else { return Cells.none }
        return "(\(specs.count) specs)"
    }
}
