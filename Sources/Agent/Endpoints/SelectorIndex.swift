import Policy

/// Endpoint selectors filed so that a label set is matched only against those it can satisfy. Selecting the
/// endpoints a few dozen rules apply to runs on every endpoint change, over every identity of the node: matching
/// each selector against each label set cost a create on a node with 1,000 identities several milliseconds.
///
/// A selector with an `In` requirement is filed under that requirement's key and each of its values (the first such
/// requirement: the one its `matchLabels` wrote, before the namespace the parser appends); a label set can only
/// satisfy it with one of those values, so it is looked up by the values it has for the key. Selectors without one
/// are matched against every label set.
struct SelectorIndex {
    private struct Key: Hashable {
        let source: String?
        let key: String
    }

    private var byValue: [Key: [String: [LabelSelector]]] = [:]
    private var unfiled: [LabelSelector] = []

    init(_ selectors: some Sequence<LabelSelector>) {
        for selector in selectors {
            guard let requirement = selector.requirements.first(where: { $0.op == .in }) else {
                unfiled.append(selector)
                continue
            }
            let key = Key(source: requirement.source, key: requirement.key)
            for value in requirement.values { byValue[key, default: [:]][value, default: []].append(selector) }
        }
    }

    /// Whether any of the selectors matches `labels`.
    func matchesAny(_ labels: LabelSet) -> Bool {
        if unfiled.contains(where: { $0.matches(labels) }) { return true }
        for (key, selectors) in byValue {
            for value in labels.values(forKey: key.key, source: key.source) {
                if selectors[value]?.contains(where: { $0.matches(labels) }) ?? false { return true }
            }
        }
        return false
    }
}
