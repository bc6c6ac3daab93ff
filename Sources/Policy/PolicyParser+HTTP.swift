import AgentAPI

extension PolicyParser {
    /// `toPorts[].rules`: `http` only. HTTP rules are decided in the kernel of the server's node, on the sockets of
    /// the endpoint the policy selects, so they belong to ingress allow sections.
    static func httpRules(_ r: FieldReader, direction: Direction, deny: Bool, namespace: String?) throws(AgentError)
        -> [HTTPRule]
    {
        if deny {
            throw r.error(
                "L7 rules are not allowed in \(PolicyRule.sectionName(direction, deny: true)) (deny sections take "
                    + "only peers and ports)")
        }
        if direction == .egress {
            throw r.error(
                "egress HTTP rules are not supported: HTTP rules are enforced on the server side; put them in the "
                    + "ingress policy of the endpoint that serves the port")
        }
        _ = try r.object(
            allowed: ["http"],
            unsupported: [
                "kafka": "kafka rules are not supported (HTTP rules only)",
                "dns": "dns rules are not supported (HTTP rules only)",
                "l7proto": "l7proto (generic L7 parsers) is not supported (HTTP rules only)",
                "l7": "l7 (generic L7 rules) is not supported (HTTP rules only)",
            ])
        let field = try r.required("http")
        let elements = try field.array()
        if elements.isEmpty { throw field.error("expected at least one HTTP rule ({} allows every request)") }
        if elements.count > HTTPPortPolicy.maxRules {
            throw field.error("lists \(elements.count) rules; at most \(HTTPPortPolicy.maxRules) are allowed")
        }
        var rules: [HTTPRule] = []
        for element in elements { rules.append(try httpRule(element, namespace: namespace)) }
        return rules
    }

    /// The kernel parses HTTP from one TCP byte stream per socket and enrolls sockets by port: a rule's ports must
    /// be single TCP ports (or TCP port names).
    static func checkHTTPPort(_ spec: PortSpec, field: FieldReader) throws(AgentError) {
        if spec.proto != .tcp {
            let what = spec.proto == .any ? "protocol ANY (or none), which includes UDP and SCTP" : spec.proto.rawValue
            throw field.error("HTTP rules need protocol TCP: HTTP is parsed from a TCP stream, not \(what)")
        }
        if spec.name == nil && spec.port == 0 {
            throw field.error("HTTP rules need a port: the kernel enrolls server sockets port by port")
        }
        if let end = spec.endPort, end != spec.port {
            throw field.error(
                "HTTP rules cannot apply to a port range (\(spec.port)-\(end)): the kernel enrolls server sockets "
                    + "port by port")
        }
    }

    /// `{method, path, host, headers, headerMatches, fromEndpoints}`.
    static func httpRule(_ r: FieldReader, namespace: String?) throws(AgentError) -> HTTPRule {
        _ = try r.object(allowed: ["method", "path", "host", "headers", "headerMatches", "fromEndpoints"])
        var rule = HTTPRule()
        rule.method = try r.child("method").flatMap { (field) throws(AgentError) in try pattern(field) }
        rule.path = try r.child("path").flatMap { (field) throws(AgentError) in try pattern(field) }
        rule.host = try r.child("host").flatMap { (field) throws(AgentError) in try pattern(field) }
        if let field = r.child("headers") {
            for element in try field.array() { rule.headers.append(try header(element)) }
        }
        if let field = r.child("headerMatches") {
            for element in try field.array() { rule.headers.append(try headerMatch(element)) }
        }
        if rule.headers.count > HTTPHeaderRequirement.maxPerRule {
            throw r.error(
                "requires \(rule.headers.count) headers; at most \(HTTPHeaderRequirement.maxPerRule) "
                    + "(headers and headerMatches together) are allowed")
        }
        if let field = r.child("fromEndpoints") { rule.endpoints = try peerSelectors(field, namespace: namespace) }
        return rule
    }

    /// A regex; an empty one constrains nothing, as in Cilium (whose empty fields are unset).
    private static func pattern(_ field: FieldReader) throws(AgentError) -> HTTPPattern? {
        let text = try field.string()
        if text.isEmpty { return nil }
        do {
            return try HTTPPattern(text)
        } catch {
            throw field.error("regex \(quoted(text)): \(error.message)")
        }
    }

    /// A `headers` element: `Name` (present) or, as Cilium reads it, `Name: value` (present with that value).
    private static func header(_ field: FieldReader) throws(AgentError) -> HTTPHeaderRequirement {
        let text = try field.string()
        guard let space = text.firstIndex(of: " ") else {
            try checkHeaderName(text, field: field)
            return HTTPHeaderRequirement(name: text)
        }
        var name = String(text[..<space])
        if name.hasSuffix(":") { name.removeLast() }
        let value = String(text[text.index(after: space)...])
        try checkHeaderName(name, field: field)
        try checkHeaderValue(value, field: field)
        return HTTPHeaderRequirement(name: name, value: value)
    }

    /// A `headerMatches` element: `name`, `value` (absent: present with any value), and `mismatch` FAIL only: the
    /// kernel refuses a request, it cannot rewrite one.
    private static func headerMatch(_ r: FieldReader) throws(AgentError) -> HTTPHeaderRequirement {
        _ = try r.object(
            allowed: ["name", "value", "mismatch"],
            unsupported: ["secret": "secret (header values from Kubernetes secrets) is not supported; give value"])
        let nameField = try r.required("name")
        let name = try nameField.string()
        try checkHeaderName(name, field: nameField)
        if let field = r.child("mismatch") {
            let action = try field.string()
            guard action == "FAIL" else {
                throw field.error(
                    "mismatch \(quoted(action)) is not supported: requests are decided in the kernel, which can "
                        + "refuse a request (FAIL) but not log or rewrite its headers")
            }
        }
        guard let valueField = r.child("value") else { return HTTPHeaderRequirement(name: name) }
        let value = try valueField.string()
        try checkHeaderValue(value, field: valueField)
        return HTTPHeaderRequirement(name: name, value: value)
    }

    /// An RFC 9110 token, within the kernel's name buffer.
    private static func checkHeaderName(_ name: String, field: FieldReader) throws(AgentError) {
        let punctuation = Set("!#$%&'*+-.^_`|~".utf8)
        guard !name.isEmpty,
            name.utf8.allSatisfy({
                ($0 < 0x80 && Character(Unicode.Scalar($0)).isLetter) || punctuation.contains($0)
                    || (0x30...0x39).contains($0)
            })
        else { throw field.error("header name \(quoted(name)) is not a valid HTTP field name") }
        guard name.utf8.count <= HTTPHeaderRequirement.maxNameLength else {
            throw field.error("header name is \(name.utf8.count) bytes; at most \(HTTPHeaderRequirement.maxNameLength)")
        }
    }

    /// Visible ASCII and inner spaces or tabs, within the kernel's value buffer (values compare exactly).
    private static func checkHeaderValue(_ value: String, field: FieldReader) throws(AgentError) {
        guard value.utf8.allSatisfy({ (0x20...0x7E).contains($0) || $0 == 0x09 }) else {
            throw field.error("header value \(quoted(value)) must be visible ASCII, spaces or tabs")
        }
        // HTTP strips the whitespace around a field value, so a value with some could never match.
        if let first = value.utf8.first, let last = value.utf8.last,
            [first, last].contains(where: { $0 == 0x20 || $0 == 0x09 })
        {
            throw field.error("header value \(quoted(value)) must not start or end with whitespace")
        }
        guard value.utf8.count <= HTTPHeaderRequirement.maxValueLength else {
            throw field.error(
                "header value is \(value.utf8.count) bytes; at most \(HTTPHeaderRequirement.maxValueLength)")
        }
    }
}
