import AgentAPI

/// A port a pod gives a name (a container port's `name`; Cilium's endpoint `named-ports`), so that policies can
/// allow `http` wherever each pod serves it.
public struct NamedPort: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var port: UInt16
    /// TCP, UDP or SCTP.
    public var proto: L4Protocol

    public init(name: String, port: UInt16, proto: L4Protocol = .tcp) {
        self.name = name
        self.port = port
        self.proto = proto
    }

    public var description: String { "\(name)=\(port)/\(proto.rawValue)" }

    /// Why `text` is not a port name as Kubernetes validates them (IANA_SVC_NAME: at most 15 lower-case letters,
    /// digits and '-', at least one letter, no '-' at either end or twice in a row), nil when it is one.
    public static func nameProblem(_ text: String) -> String? {
        if text.isEmpty || text.utf8.count > 15 { return "must be 1 to 15 characters" }
        let allowed = text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-"
        }
        guard allowed, text.unicodeScalars.contains(where: { ("a"..."z").contains($0) }) else {
            return "must be lower-case letters, digits and '-', with at least one letter"
        }
        if text.hasPrefix("-") || text.hasSuffix("-") || text.contains("--") {
            return "must not start or end with '-' or hold \"--\""
        }
        return nil
    }

    /// The `named-ports` of an endpoint request: `[{name, port, protocol}]`, protocol TCP when absent; a name may
    /// appear once per protocol. Errors name the element (`named-ports[1].port`).
    public static func parseList(_ json: JSON?, field: String = "named-ports") throws(AgentError) -> [NamedPort] {
        guard let json, !json.isNull else { return [] }
        guard case .array(let elements) = json else {
            throw AgentError.invalidField(field, "expected an array of {name, port, protocol}, got \(json.typeName)")
        }
        var ports: [NamedPort] = []
        for (index, element) in elements.enumerated() {
            let at = "\(field)[\(index)]"
            guard case .object(let members) = element else {
                throw AgentError.invalidField(at, "expected an object, got \(element.typeName)")
            }
            for key in members.keys.sorted() where !["name", "port", "protocol"].contains(key) {
                throw AgentError.invalidField("\(at).\(key)", "unknown field \(quoted(key))")
            }
            guard case .string(let name)? = members["name"] else {
                throw AgentError.invalidField("\(at).name", "is required (a string)")
            }
            if let problem = nameProblem(name) {
                throw AgentError.invalidField("\(at).name", "\(quoted(name)) \(problem)")
            }
            guard let number = members["port"]?.intValue, let port = UInt16(exactly: number), port > 0 else {
                throw AgentError.invalidField("\(at).port", "expected a port between 1 and 65535")
            }
            var proto = L4Protocol.tcp
            if let value = members["protocol"], !value.isNull {
                guard case .string(let text) = value, let parsed = L4Protocol(rawValue: text.uppercased()),
                    parsed != .any
                else { throw AgentError.invalidField("\(at).protocol", "expected TCP, UDP or SCTP") }
                proto = parsed
            }
            let named = NamedPort(name: name, port: port, proto: proto)
            if ports.contains(where: { $0.name == name && $0.proto == proto }) {
                throw AgentError.invalidField("\(at).name", "\(quoted(name)) is named twice for \(proto.rawValue)")
            }
            ports.append(named)
        }
        return ports
    }

    /// The list as the API shows it.
    public static func json(_ ports: [NamedPort]) -> JSON {
        .array(
            ports.map {
                ["name": .string($0.name), "port": .int(Int64($0.port)), "protocol": .string($0.proto.rawValue)]
            })
    }
}
