import AgentAPI

/// Which labels a workload may claim for itself.
///
/// An endpoint's labels become its security identity, so a label that names something the workload is not would
/// give it another workload's rights: `reserved:host` makes it identity 1, the node itself; a namespace label other
/// than its own puts it under another namespace's policies and into their peers' allow rules. The agent alone
/// assigns reserved identities, and the namespace comes from the request's `k8s-namespace`, never from its labels.
public enum EndpointLabels {
    /// Refuses `labels` (as given, in request order) that an endpoint of Kubernetes namespace `namespace` may not
    /// carry: any `reserved:` label, and a namespace label (`io.kubernetes.pod.namespace` of any source: selectors
    /// written without a source match them all) whose value is not `namespace`. One equal to it is redundant and
    /// accepted. The error names the element (`labels[2]`) and the label.
    public static func check(_ labels: [Label], namespace: String?, field: String = "labels") throws(AgentError) {
        for (index, label) in labels.enumerated() {
            let at = "\(field)[\(index)]"
            if label.source == ReservedIdentity.source {
                throw AgentError.invalidField(
                    at,
                    "label \(quoted(label.description)): reserved labels are assigned by the agent, "
                        + "an endpoint cannot claim them")
            }
            if label.key == PolicyParser.namespaceLabelKey, label.value != namespace {
                let reason =
                    namespace.map { "contradicts k8s-namespace \(quoted($0))" }
                    ?? "needs k8s-namespace, which says the endpoint's namespace"
                throw AgentError.invalidField(at, "label \(quoted(label.description)): \(reason)")
            }
        }
    }

    /// Parses label texts and checks them as `check` does; the result carries the `k8s:` namespace label of
    /// `namespace` (added when absent), which namespaced policies select their endpoints by.
    public static func parse(_ texts: [String], namespace: String?, field: String = "labels") throws(AgentError)
        -> LabelSet
    {
        var parsed: [Label] = []
        for (index, text) in texts.enumerated() { parsed.append(try Label(parsing: text, field: "\(field)[\(index)]")) }
        try check(parsed, namespace: namespace, field: field)
        var set = try LabelSet(parsing: texts, field: field)
        if let namespace, set.label(source: "k8s", key: PolicyParser.namespaceLabelKey) == nil {
            set = set.inserting(try Label(source: "k8s", key: PolicyParser.namespaceLabelKey, value: namespace))
        }
        return set
    }
}
