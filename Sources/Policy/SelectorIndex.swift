/// Label selectors filed so that a label set is matched only against those it can satisfy. The agent selects the
/// endpoints a few dozen rules apply to on every endpoint change, over every identity of the node, and finds the
/// rules that select an endpoint (`PolicyRepository.rules(selecting:)`) for each endpoint it regenerates: matching
/// each selector against each label set cost a create on a node with 1,000 identities and 500 rules many
/// milliseconds.
///
/// A selector with an `In` requirement is filed under that requirement's key and each of its values; a label set can
/// only satisfy it with one of those values, so it is looked up by the values it has for the key. Of several `In`
/// requirements the one whose values the fewest selectors share is chosen: `tier=web` in every namespace's policies
/// is filed under the policy's namespace, so a web pod is matched against its namespace's selectors only, not
/// against every one naming `tier=web`. Selectors without one are matched against every label set.
public struct SelectorIndex: Sendable {
    private struct Key: Hashable {
        let source: String?
        let key: String
    }

    private let selectors: [LabelSelector]
    /// Positions in `selectors`.
    private var byValue: [Key: [String: [Int]]] = [:]
    private var unfiled: [Int] = []

    public init(_ selectors: [LabelSelector]) {
        self.selectors = selectors
        // How many selectors each key and value would be filed under, to pick the narrowest requirement.
        var sharing: [Key: [String: Int]] = [:]
        for selector in selectors {
            for requirement in selector.requirements where requirement.op == .in {
                let key = Key(source: requirement.source, key: requirement.key)
                for value in requirement.values { sharing[key, default: [:]][value, default: 0] += 1 }
            }
        }
        func width(_ requirement: SelectorRequirement) -> Int {
            let counts = sharing[Key(source: requirement.source, key: requirement.key)] ?? [:]
            return requirement.values.reduce(0) { $0 + (counts[$1] ?? 0) }
        }
        for (position, selector) in selectors.enumerated() {
            // The first of equally narrow requirements: the one `matchLabels` wrote, before the namespace.
            let requirements = selector.requirements.filter { $0.op == .in }
            guard let requirement = requirements.min(by: { width($0) < width($1) }) else {
                unfiled.append(position)
                continue
            }
            let key = Key(source: requirement.source, key: requirement.key)
            for value in requirement.values { byValue[key, default: [:]][value, default: []].append(position) }
        }
    }

    /// Whether any of the selectors matches `labels`.
    public func matchesAny(_ labels: LabelSet) -> Bool {
        if unfiled.contains(where: { selectors[$0].matches(labels) }) { return true }
        for (key, positions) in byValue {
            for value in labels.values(forKey: key.key, source: key.source) {
                if positions[value]?.contains(where: { selectors[$0].matches(labels) }) ?? false { return true }
            }
        }
        return false
    }

    /// The positions of the selectors that match `labels`, ascending.
    public func matching(_ labels: LabelSet) -> [Int] {
        var found = unfiled.filter { selectors[$0].matches(labels) }
        for (key, positions) in byValue {
            for value in labels.values(forKey: key.key, source: key.source) {
                found += (positions[value] ?? []).filter { selectors[$0].matches(labels) }
            }
        }
        // A selector filed under several values is found once per value the label set has for its key.
        return Set(found).sorted()
    }
}
