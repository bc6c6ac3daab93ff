/// The services policies name in `toServices`, whose backends must be resolved before the policy can be enforced.
extension PolicyRepository {
    /// Every service a rule names, in any section.
    public var serviceReferences: Set<ServiceReference> { facts.serviceReferences }

    static func serviceReferences(_ rules: [IndexedRule]) -> Set<ServiceReference> {
        Set(rules.flatMap { serviceReferences(of: $0.rule) })
    }

    /// The rules naming any of `services` in `toServices`: their endpoints' policy follows those services' backends.
    public func rules(namingServices services: Set<ServiceReference>) -> [PolicyRule] {
        guard !services.isEmpty else { return [] }
        return rules.map(\.rule).filter { !services.isDisjoint(with: Self.serviceReferences(of: $0)) }
    }

    static func serviceReferences(of rule: PolicyRule) -> [ServiceReference] {
        [false, true].flatMap { deny in (rule.section(.egress, deny: deny) ?? []).flatMap { $0.services ?? [] } }
    }
}
