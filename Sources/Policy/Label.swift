import AgentAPI

/// One security-relevant label of an endpoint or identity: `source:key=value`.
///
/// The source says where the label came from (`k8s`, `reserved`, `cidr`, `container`, ...); a label written without
/// one gets `unspec`. The value may be empty (`reserved:host`).
public struct Label: Hashable, Sendable {
    public let source: String
    public let key: String
    public let value: String

    /// Source of labels written without one.
    public static let unspecifiedSource = "unspec"
    /// The selector-only source meaning "any source"; a label itself cannot carry it.
    public static let anySource = "any"

    /// Longest key accepted: a Kubernetes label key is a 253-character prefix, a slash and a 63-character name.
    public static let maxKeyLength = 317
    /// Longest value accepted. Kubernetes values are at most 63 characters, but container-runtime and CIDR labels
    /// can be longer, so the limit is looser.
    public static let maxValueLength = 255
    /// Longest source accepted.
    public static let maxSourceLength = 63

    /// A validated label. `field` names the input the label came from, for the error.
    public init(source: String = Label.unspecifiedSource, key: String, value: String = "", field: String = "labels")
        throws(AgentError)
    {
        do {
            try Label.validate(source: source, key: key, value: value)
        } catch {
            let text = value.isEmpty ? "\(source):\(key)" : "\(source):\(key)=\(value)"
            throw error.fieldError(field, label: text)
        }
        self.source = source
        self.key = key
        self.value = value
    }

    /// A label from its text form: `k8s:app=frontend`, `reserved:host`, `app=x` (source `unspec`), `app=` (empty
    /// value). The source is the text before the first colon, when that colon comes before any `=`.
    public init(parsing text: String, field: String = "labels") throws(AgentError) {
        let (source, key, value) = Label.split(text)
        do {
            try Label.validate(source: source ?? Label.unspecifiedSource, key: key, value: value)
        } catch {
            throw error.fieldError(field, label: text)
        }
        self.source = source ?? Label.unspecifiedSource
        self.key = key
        self.value = value
    }

    /// For values the module builds itself from already validated parts.
    init(trusted source: String, _ key: String, _ value: String = "") {
        self.source = source
        self.key = key
        self.value = value
    }

    /// Splits `source:key=value`; the source is nil when the text has none.
    static func split(_ text: String) -> (source: String?, key: String, value: String) {
        var keyPart = Substring(text)
        var value = Substring("")
        if let eq = text.firstIndex(of: "=") {
            keyPart = text[..<eq]
            value = text[text.index(after: eq)...]
        }
        if let colon = keyPart.firstIndex(of: ":") {
            return (String(keyPart[..<colon]), String(keyPart[keyPart.index(after: colon)...]), String(value))
        }
        return (nil, String(keyPart), String(value))
    }

    /// Checks the parts; the error says which part is wrong.
    static func validate(source: String, key: String, value: String) throws(LabelError) {
        if source.isEmpty { throw LabelError("source must not be empty") }
        if source.count > maxSourceLength { throw LabelError("source is longer than \(maxSourceLength) characters") }
        if !source.unicodeScalars.allSatisfy(isSourceCharacter) {
            throw LabelError("source \(quoted(source)) may contain only lower-case letters, digits, '-' and '.'")
        }
        if source == anySource { throw LabelError("source \"any\" is only valid in selectors") }
        if key.isEmpty { throw LabelError("key must not be empty") }
        if key.count > maxKeyLength { throw LabelError("key is longer than \(maxKeyLength) characters") }
        if let bad = key.unicodeScalars.first(where: isForbidden) {
            throw LabelError("key must not contain \(describe(bad))")
        }
        if key.contains("=") { throw LabelError("key must not contain '='") }
        if value.count > maxValueLength { throw LabelError("value is longer than \(maxValueLength) characters") }
        if let bad = value.unicodeScalars.first(where: isForbidden) {
            throw LabelError("value must not contain \(describe(bad))")
        }
    }

    private static func isSourceCharacter(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("0"..."9").contains(c) || c == "-" || c == "."
    }

    /// Whitespace and control characters would make labels ambiguous in query strings and CLI output.
    private static func isForbidden(_ c: Unicode.Scalar) -> Bool {
        c.properties.isWhitespace || c.value < 0x20 || c.value == 0x7F
    }

    private static func describe(_ c: Unicode.Scalar) -> String {
        c.properties.isWhitespace ? "whitespace" : "control characters"
    }
}

/// A label validation failure before it is given a field and the label's text.
struct LabelError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

extension LabelError {
    func fieldError(_ field: String, label text: String) -> AgentError {
        AgentError.invalidField(field, "label \(quoted(text)): \(reason)")
    }
}

extension Label: CustomStringConvertible {
    /// `source:key=value`, or `source:key` when the value is empty.
    public var description: String {
        value.isEmpty ? "\(source):\(key)" : "\(source):\(key)=\(value)"
    }
}

extension Label: Comparable {
    /// Orders by key, then source, then value, so a sorted list reads by key.
    public static func < (a: Label, b: Label) -> Bool {
        if a.key != b.key { return a.key < b.key }
        if a.source != b.source { return a.source < b.source }
        return a.value < b.value
    }
}

/// The text in double quotes, with quotes and backslashes escaped, for error messages.
func quoted(_ text: String) -> String {
    var out = "\""
    for c in text {
        switch c {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        default: out.append(c)
        }
    }
    return out + "\""
}
