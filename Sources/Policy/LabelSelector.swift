/// One condition of a label selector on the labels of one key.
///
/// A key written with a source (`k8s:app`) looks only at labels of that source; a key without one (`app`, or
/// `any:app`) looks at labels of that key from any source.
public struct SelectorRequirement: Hashable, Sendable {
    public enum Operator: String, Sendable, CaseIterable {
        case `in` = "In"
        case notIn = "NotIn"
        case exists = "Exists"
        case doesNotExist = "DoesNotExist"
    }

    /// Nil: any source.
    public let source: String?
    public let key: String
    public let op: Operator
    /// Sorted and unique; empty for Exists and DoesNotExist.
    public let values: [String]

    public init(source: String?, key: String, op: Operator, values: [String] = []) {
        self.source = source
        self.key = key
        self.op = op
        self.values = Array(Set(values)).sorted()
    }

    /// A requirement from a selector key as written (`k8s:app`, `app`, `any:app`).
    public init(selectorKey: String, op: Operator, values: [String] = []) {
        let (source, key) = SelectorRequirement.splitKey(selectorKey)
        self.init(source: source, key: key, op: op, values: values)
    }

    /// Splits a selector key at its first colon; `any` and no source both mean any source.
    static func splitKey(_ text: String) -> (source: String?, key: String) {
        guard let colon = text.firstIndex(of: ":") else { return (nil, text) }
        let source = String(text[..<colon])
        return (source == Label.anySource ? nil : source, String(text[text.index(after: colon)...]))
    }

    /// Kubernetes semantics: In needs a label with one of the values; NotIn holds when no label has one of them
    /// (so also when the key is absent); Exists and DoesNotExist look at the key only.
    public func matches(_ labels: LabelSet) -> Bool {
        let present = labels.values(forKey: key, source: source)
        switch op {
        case .in: return present.contains { values.contains($0) }
        case .notIn: return !present.contains { values.contains($0) }
        case .exists: return !present.isEmpty
        case .doesNotExist: return present.isEmpty
        }
    }

    /// The key as written with its source, `any:` when it has none.
    public var qualifiedKey: String { "\(source ?? Label.anySource):\(key)" }
}

extension SelectorRequirement: CustomStringConvertible {
    public var description: String {
        switch op {
        case .in where values.count == 1: return "\(qualifiedKey)=\(values[0])"
        case .in, .notIn: return "\(qualifiedKey) \(op.rawValue) (\(values.joined(separator: ",")))"
        case .exists: return qualifiedKey
        case .doesNotExist: return "!\(qualifiedKey)"
        }
    }
}

/// A Kubernetes label selector as policies use it: every requirement must hold; no requirement selects everything.
public struct LabelSelector: Hashable, Sendable {
    public let requirements: [SelectorRequirement]

    /// `{}`: selects every label set.
    public static let all = LabelSelector(requirements: [])

    public init(requirements: [SelectorRequirement]) {
        self.requirements = requirements
    }

    public func matches(_ labels: LabelSet) -> Bool {
        requirements.allSatisfy { $0.matches(labels) }
    }

    /// True when a requirement names `key`, from whatever source.
    public func mentions(key: String) -> Bool {
        requirements.contains { $0.key == key }
    }

    /// This selector with `requirement` added.
    public func adding(_ requirement: SelectorRequirement) -> LabelSelector {
        LabelSelector(requirements: requirements + [requirement])
    }
}

extension LabelSelector: CustomStringConvertible {
    public var description: String {
        "{" + requirements.map(\.description).joined(separator: ", ") + "}"
    }
}
