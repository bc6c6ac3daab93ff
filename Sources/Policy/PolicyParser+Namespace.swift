import AgentAPI

extension PolicyParser {
    /// A namespaced policy's endpoint selector with the policy's namespace: such a policy applies to its own
    /// namespace's endpoints only, whatever its selector says.
    ///
    /// A match on the namespace label that no endpoint of that namespace satisfies (`matchLabels` naming another
    /// namespace, `In` other namespaces, `NotIn` its own, `DoesNotExist`) would make the rule select nothing. As
    /// Cilium does (ParseToCiliumRule), the match is removed, the rule applies to the matching endpoints of the
    /// policy's own namespace, and a warning says so. A match every endpoint of the namespace satisfies is redundant
    /// and dropped silently. Only matches that can see the `k8s:` namespace label (source `k8s` or any) are touched.
    ///
    /// Clusterwide policies keep such matches: selecting one namespace's endpoints is what they are for.
    static func confine(
        _ selector: LabelSelector, to namespace: String, path: String, warnings: inout [String]
    ) -> LabelSelector {
        let own = LabelSet([Label(trusted: "k8s", namespaceLabelKey, namespace)])
        var kept: [SelectorRequirement] = []
        for requirement in selector.requirements {
            guard requirement.key == namespaceLabelKey, requirement.source == nil || requirement.source == "k8s" else {
                kept.append(requirement)
                continue
            }
            let redundant = requirement.matches(own) && (requirement.op != .in || requirement.values == [namespace])
            if !redundant {
                warnings.append(
                    "\(path): the namespace match \(requirement) was removed: a CiliumNetworkPolicy applies only in "
                        + "its own namespace, so the rule selects the matching pods of namespace \(quoted(namespace))")
            }
        }
        return LabelSelector(requirements: kept + [namespaceRequirement(namespace)])
    }
}
