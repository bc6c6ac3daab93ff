import AgentAPI

/// A JSON value with its path in the document, for reading fields with errors that name where they are.
///
/// Paths look like `specs[0].egress[0].toPorts[0].ports[0].port`. Errors are `invalid-field` with that path as the
/// field and a message that starts with the policy's name, when known: `web-tier/allow-x: <path>: <what>`.
struct FieldReader {
    let value: JSON
    let path: String
    /// `namespace/name` of the document being read, once known.
    let context: String?

    init(_ value: JSON, path: String, context: String? = nil) {
        self.value = value
        self.path = path
        self.context = context
    }

    /// A path element appended: `spec` + `egress` is `spec.egress`; a key that is not a plain word is quoted in
    /// brackets (`matchLabels["k8s:app"]`) so the path stays unambiguous.
    static func join(_ path: String, _ key: String) -> String {
        let plain = !key.isEmpty && key.unicodeScalars.allSatisfy(isWordCharacter)
        if !plain { return "\(path)[\(quoted(key))]" }
        return path.isEmpty ? key : "\(path).\(key)"
    }

    private static func isWordCharacter(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "_" || c == "-"
    }

    func error(_ what: String, at path: String? = nil) -> AgentError {
        let field = path ?? self.path
        let prefix = context.map { "\($0): " } ?? ""
        return AgentError(
            code: .invalidField, status: 400, message: "\(prefix)\(field.isEmpty ? "document" : field): \(what)",
            field: field.isEmpty ? nil : field)
    }

    func withContext(_ context: String) -> FieldReader { FieldReader(value, path: path, context: context) }

    /// The object's members, after checking every key is known: `allowed` keys pass, `unsupported` keys are
    /// rejected with the reason given, anything else as unknown.
    func object(allowed: Set<String>, unsupported: [String: String] = [:], hint: [String: String] = [:])
        throws(AgentError) -> [String: JSON]
    {
        guard case .object(let members) = value else { throw error("expected an object, got \(value.typeName)") }
        for key in members.keys.sorted() where !allowed.contains(key) {
            let at = FieldReader.join(path, key)
            if let reason = unsupported[key] { throw error(reason, at: at) }
            var message = "unknown field \(quoted(key))"
            if let extra = hint[key] { message += "; \(extra)" }
            throw error(message, at: at)
        }
        return members
    }

    /// The member `key`, nil when absent. JSON null counts as absent, as Kubernetes reads it.
    func child(_ key: String) -> FieldReader? {
        guard let member = value[key], !member.isNull else { return nil }
        return FieldReader(member, path: FieldReader.join(path, key), context: context)
    }

    func required(_ key: String) throws(AgentError) -> FieldReader {
        guard let member = child(key) else { throw error("is required", at: FieldReader.join(path, key)) }
        return member
    }

    func string() throws(AgentError) -> String {
        guard case .string(let s) = value else { throw error("expected a string, got \(value.typeName)") }
        return s
    }

    func bool() throws(AgentError) -> Bool {
        guard case .bool(let b) = value else { throw error("expected true or false, got \(value.typeName)") }
        return b
    }

    /// The elements, each with its indexed path.
    func array() throws(AgentError) -> [FieldReader] {
        guard case .array(let elements) = value else { throw error("expected an array, got \(value.typeName)") }
        return elements.enumerated().map { FieldReader($1, path: "\(path)[\($0)]", context: context) }
    }

    /// Strings of an array of strings.
    func strings() throws(AgentError) -> [String] {
        var out: [String] = []
        for element in try array() { out.append(try element.string()) }
        return out
    }
}
