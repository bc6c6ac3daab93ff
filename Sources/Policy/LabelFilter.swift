import AgentAPI

/// Drops labels that are not security-relevant before labels become an identity.
///
/// Labels that differ for every pod (a StatefulSet pod's name, a Job's completion index) or every rollout (a
/// Deployment's pod-template-hash) would give each pod its own identity: an identity explosion that fills policy maps
/// and makes every new pod a policy recomputation. Policies never need them, so they are dropped.
///
/// A pattern is `[source:]key[*]`: without a source it matches the key from any source (runtimes put some of these
/// on containers as well as pods); a trailing `*` matches every key with that prefix. `reserved:` labels are never
/// dropped: they decide reserved identities.
public struct LabelFilter: Sendable, Equatable {
    /// One key pattern.
    public struct Pattern: Sendable, Equatable, CustomStringConvertible {
        /// Nil: any source.
        public let source: String?
        public let key: String
        /// True when `key` is a prefix (the pattern ended in `*`).
        public let isPrefix: Bool

        /// Parses `[source:]key[*]`.
        public init(_ text: String, field: String = "label-filter") throws(AgentError) {
            let (source, rest, value) = Label.split(text)
            guard value.isEmpty, !text.contains("=") else {
                throw AgentError.invalidField(field, "pattern \(quoted(text)) must be a key, not key=value")
            }
            var key = rest
            let isPrefix = key.hasSuffix("*")
            if isPrefix { key.removeLast() }
            if (key.isEmpty && !isPrefix) || key.contains("*") || key.contains(where: \.isWhitespace) {
                throw AgentError.invalidField(
                    field, "pattern \(quoted(text)) needs a key without spaces, with '*' only at the end")
            }
            if source == "" { throw AgentError.invalidField(field, "pattern \(quoted(text)) has an empty source") }
            self.source = source == Label.anySource ? nil : source
            self.key = key
            self.isPrefix = isPrefix
        }

        public func matches(_ label: Label) -> Bool {
            if let source, source != label.source { return false }
            return isPrefix ? label.key.hasPrefix(key) : label.key == key
        }

        public var description: String { (source.map { "\($0):" } ?? "") + key + (isPrefix ? "*" : "") }
    }

    public let patterns: [Pattern]

    /// Keys that are unique per pod, per rollout or per Job run (any source).
    public static let defaultPatterns: [String] = [
        "pod-template-hash",  // Deployment: changes with every rollout
        "pod-template-generation",  // DaemonSet (older controllers): changes with every rollout
        "controller-revision-hash",  // StatefulSet and DaemonSet: changes with every rollout
        "statefulset.kubernetes.io/pod-name",  // StatefulSet: one per pod
        "apps.kubernetes.io/pod-index",  // StatefulSet: one per pod
        "batch.kubernetes.io/job-completion-index",  // indexed Job: one per pod
        "controller-uid",  // Job (older label): one per Job run
        "batch.kubernetes.io/controller-uid",  // Job: one per Job run
        "io.kubernetes.pod.uid",  // container runtimes: one per pod
        "io.kubernetes.pod.name",  // container runtimes: one per pod
    ]
    // `job-name` and `batch.kubernetes.io/job-name` are kept: they name the Job, which policies do select.

    /// The default filter: drops `defaultPatterns`.
    public static let `default`: LabelFilter = {
        var patterns: [Pattern] = []
        for text in defaultPatterns {
            // The default list is a constant that parses; a failure here is a programming error caught by tests.
            guard let pattern = try? Pattern(text) else { preconditionFailure("bad default pattern \(text)") }
            patterns.append(pattern)
        }
        return LabelFilter(patterns: patterns)
    }()

    /// Keeps every label.
    public static let none = LabelFilter(patterns: [])

    public init(patterns: [Pattern]) { self.patterns = patterns }

    /// Parses patterns; errors name the element (`label-filter[1]`).
    public init(parsing texts: [String], field: String = "label-filter") throws(AgentError) {
        var patterns: [Pattern] = []
        for (i, text) in texts.enumerated() { patterns.append(try Pattern(text, field: "\(field)[\(i)]")) }
        self.patterns = patterns
    }

    /// True when the label is kept.
    public func isRelevant(_ label: Label) -> Bool {
        label.source == ReservedIdentity.source || !patterns.contains { $0.matches(label) }
    }

    /// The security-relevant part of `labels`.
    public func apply(_ labels: LabelSet) -> LabelSet { labels.filter(isRelevant) }
}
