/// Whether endpoints' named ports matter to the policy in force.
extension PolicyRepository {
    /// True when some rule names a port (`port: http`): then an endpoint's named ports coming or going can change
    /// other endpoints' policy, not only its own.
    public var usesNamedPorts: Bool { facts.usesNamedPorts }

    static func usesNamedPorts(_ rules: [IndexedRule]) -> Bool {
        rules.contains { indexed in
            Direction.allCases.contains { direction in
                [false, true].contains { deny in
                    (indexed.rule.section(direction, deny: deny) ?? []).contains { item in
                        item.ports?.contains { $0.name != nil } ?? false
                    }
                }
            }
        }
    }
}
