import AgentAPI

extension PolicyParser {
    /// Most ports one `toPorts` element may list (Cilium's limit).
    public static let maxPortsPerRule = 40

    /// `toPorts`: each element's `ports`, flattened. L7 and TLS fields are refused: this agent enforces layers 3
    /// and 4 only, and a rule that silently lost its L7 part would allow more than its author meant.
    static func portRules(_ r: FieldReader, deny: Bool, section: String) throws(AgentError) -> [PortSpec] {
        let l7 =
            deny
            ? "L7 rules are not allowed in \(section) (deny sections take only peers and ports)"
            : "L7 rules (rules) are not supported: this agent enforces layers 3 and 4 only"
        let unsupported: [String: String] = [
            "rules": l7,
            "originatingTLS": "originatingTLS (TLS origination) is not supported",
            "terminatingTLS": "terminatingTLS (TLS termination) is not supported",
            "serverNames": "serverNames (TLS SNI matching) is not supported",
            "listener": "listener (Envoy listener redirection) is not supported",
        ]
        let elements = try r.array()
        if elements.isEmpty { throw r.error("expected at least one element with ports") }
        var specs: [PortSpec] = []
        for element in elements {
            _ = try element.object(allowed: ["ports"], unsupported: unsupported)
            let portsField = try element.required("ports")
            let ports = try portsField.array()
            if ports.isEmpty { throw portsField.error("expected at least one port") }
            if ports.count > maxPortsPerRule {
                throw portsField.error("lists \(ports.count) ports; at most \(maxPortsPerRule) are allowed")
            }
            for port in ports { specs.append(try portSpec(port)) }
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
