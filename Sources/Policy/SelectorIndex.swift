/// Label selectors filed so that a label set is matched only against those it can satisfy. The agent selects the
/// endpoints a few dozen rules apply to on every endpoint change, over every identity of the node, and finds the
/// rules that select an endpoint (`PolicyRepository.rules(selecting:)`) for each endpoint it regenerates: matching
/// each selector against each label set cost a create on a node with 1,000 identities and 500 rules many
/// milliseconds.
///
/// A selector with an `In` requirement is filed under that requirement's key and each of its values (the first such
/// requirement: the one its `matchLabels` wrote, before the namespace the parser appends); a label set can only
/// satisfy it with one of those values, so it is looked up by the values it has for the key. Selectors without one
/// are matched against every label set.
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
        for (position, selector) in selectors.enumerated() {
            guard let requirement = selector.requirements.first(where: { $0.op == .in }) else {
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
