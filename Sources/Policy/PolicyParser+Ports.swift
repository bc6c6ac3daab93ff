import AgentAPI

extension PolicyParser {
    /// Most ports one `toPorts` element may list (Cilium's limit).
    public static let maxPortsPerRule = 40

    /// `toPorts`: each element's `ports`, flattened, each carrying its element's `rules.http` (see
    /// `PolicyParser+HTTP`). Other L7 rules and TLS fields are refused: a rule that silently lost part of its
    /// meaning would allow more than its author meant.
    static func portRules(_ r: FieldReader, direction: Direction, deny: Bool, namespace: String?) throws(AgentError)
        -> [PortSpec]
    {
        let unsupported: [String: String] = [
            "originatingTLS": "originatingTLS (TLS origination) is not supported",
            "terminatingTLS": "terminatingTLS (TLS termination) is not supported",
            "serverNames": "serverNames (TLS SNI matching) is not supported",
            "listener": "listener (Envoy listener redirection) is not supported",
        ]
        let elements = try r.array()
        if elements.isEmpty { throw r.error("expected at least one element with ports") }
        var specs: [PortSpec] = []
        for element in elements {
            _ = try element.object(allowed: ["ports", "rules"], unsupported: unsupported)
            let portsField = try element.required("ports")
            let ports = try portsField.array()
            if ports.isEmpty { throw portsField.error("expected at least one port") }
            if ports.count > maxPortsPerRule {
                throw portsField.error("lists \(ports.count) ports; at most \(maxPortsPerRule) are allowed")
            }
            var parsed: [PortSpec] = []
            for port in ports { parsed.append(try portSpec(port)) }
            if let rules = element.child("rules") {
                let http = try httpRules(rules, direction: direction, deny: deny, namespace: namespace)
                for (index, spec) in parsed.enumerated() {
                    try checkHTTPPort(spec, field: ports[index])
                    parsed[index].http = http
                }
            }
            specs += parsed
        }
        return specs
    }

    /// `{port, endPort, protocol}`. The port is a number or a numeric string (0 or absent: every port), or a port
    /// name (`http`, see `NamedPort`).
    static func portSpec(_ r: FieldReader) throws(AgentError) -> PortSpec {
        _ = try r.object(allowed: ["port", "endPort", "protocol"])
        var port: UInt16 = 0
        if let field = r.child("port") {
            switch field.value {
            case .string(let text) where !text.isEmpty && !text.allSatisfy(\.isASCIIDigit):
                if let problem = NamedPort.nameProblem(text) {
                    throw field.error("port name \(quoted(text)) \(problem)")
                }
                if let end = r.child("endPort") { throw end.error("endPort cannot follow a named port") }
                var proto = L4Protocol.any
                if let protoField = r.child("protocol") { proto = try self.proto(protoField) }
                return PortSpec(name: text, proto: proto)
            case .string(let text):
                guard !text.isEmpty else { throw field.error("expected a port number or name, got \"\"") }
                guard text.count <= 5, let value = UInt16(text) else {
                    throw field.error("port \(text) is out of range (0-65535)")
                }
                port = value
            default:
                port = try portNumber(field, name: "port")
            }
        }
        var endPort: UInt16?
        if let field = r.child("endPort") {
            let value = try portNumber(field, name: "endPort")
            guard port != 0 else { throw field.error("endPort needs a non-zero port to start the range") }
            guard value >= port else { throw field.error("endPort \(value) is below port \(port)") }
            endPort = value
        }
        var proto = L4Protocol.any
        if let field = r.child("protocol") { proto = try self.proto(field) }
        return PortSpec(port: port, endPort: endPort, proto: proto)
    }

    private static func proto(_ field: FieldReader) throws(AgentError) -> L4Protocol {
        let text = try field.string()
        guard let value = L4Protocol(rawValue: text) else {
            let supported = L4Protocol.allCases.map(\.rawValue).joined(separator: ", ")
            throw field.error("protocol \(quoted(text)) is not supported (supported: \(supported))")
        }
        return value
    }

    static func portNumber(_ field: FieldReader, name: String) throws(AgentError) -> UInt16 {
        guard let value = field.value.intValue else {
            throw field.error("expected a whole port number, got \(field.value)")
        }
        guard let port = UInt16(exactly: value) else {
            throw field.error("\(name) \(value) is out of range (0-65535)")
        }
        return port
    }
}
