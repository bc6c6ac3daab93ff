import AgentAPI

/// A canonical set of labels: sorted, at most one label per (source, key), so equal sets compare and hash equal
/// whatever order they were given in.
public struct LabelSet: Hashable, Sendable {
    /// The labels, sorted (by key, then source).
    public private(set) var labels: [Label]

    public init() { labels = [] }

    /// The labels given; when two share source and key, the later one wins.
    public init(_ labels: some Sequence<Label>) {
        var byKey: [SourceKey: Label] = [:]
        for label in labels { byKey[SourceKey(label)] = label }
        self.labels = byKey.values.sorted()
    }

    /// Parses label texts (`k8s:app=frontend`, ...). Errors name the element (`labels[2]`) and the label; the same
    /// source and key twice with different values is an error, an exact repetition is not.
    public init(parsing texts: [String], field: String = "labels") throws(AgentError) {
        var byKey: [SourceKey: Label] = [:]
        for (i, text) in texts.enumerated() {
            let label = try Label(parsing: text, field: "\(field)[\(i)]")
            if let previous = byKey[SourceKey(label)], previous != label {
                throw AgentError.invalidField(
                    "\(field)[\(i)]",
                    "label \(quoted(text)) conflicts with \(quoted(previous.description)): same key, other value")
            }
            byKey[SourceKey(label)] = label
        }
        labels = byKey.values.sorted()
    }

    public var isEmpty: Bool { labels.isEmpty }
    public var count: Int { labels.count }

    /// The text forms, in order: what the API shows.
    public var strings: [String] { labels.map(\.description) }

    public func contains(_ label: Label) -> Bool { labels.contains(label) }

    /// The label with this source and key, if any.
    public func label(source: String, key: String) -> Label? {
        labels.first { $0.source == source && $0.key == key }
    }

    /// Values of the labels with `key`, from `source` only, or from any source when `source` is nil.
    /// Read in place: selectors ask this for every label set they are matched against.
    public func values(forKey key: String, source: String?) -> some Collection<String> {
        labels.lazy.filter { $0.key == key && (source == nil || $0.source == source) }.map(\.value)
    }

    /// This set with `label` added, replacing any label of the same source and key.
    public func inserting(_ label: Label) -> LabelSet {
        LabelSet(labels.filter { SourceKey($0) != SourceKey(label) } + [label])
    }

    /// This set without the labels of `source` and `key`.
    public func removing(source: String, key: String) -> LabelSet {
        var copy = self
        copy.labels.removeAll { $0.source == source && $0.key == key }
        return copy
    }

    /// The labels for which `keep` is true.
    public func filter(_ keep: (Label) -> Bool) -> LabelSet {
        var copy = self
        copy.labels = labels.filter(keep)
        return copy
    }

    /// The labels of `source` only.
    public func labels(ofSource source: String) -> [Label] { labels.filter { $0.source == source } }
}

extension LabelSet: Sequence {
    public func makeIterator() -> IndexingIterator<[Label]> { labels.makeIterator() }
}

extension LabelSet: CustomStringConvertible {
    /// Comma-separated text forms, as the API's label queries take them.
    public var description: String { strings.joined(separator: ",") }
}

/// The identity of a label inside a set: one value per source and key.
private struct SourceKey: Hashable {
    let source: String
    let key: String
    init(_ label: Label) {
        source = label.source
        key = label.key
    }
}
