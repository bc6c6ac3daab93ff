import AgentAPI

/// ServiceSpec as JSON, with Cilium's field names: strict reading (unknown keys refused, every error a 400 naming
/// the field, e.g. `backend-addresses[2].state`) and the one rendering answers and saved state share.
extension ServiceSpec {
    static let knownFields: Set<String> = ["id", "frontend-address", "backend-addresses", "flags"]
    static let frontendFields: Set<String> = ["ip", "port", "protocol", "scope"]
    static let backendFields: Set<String> = ["ip", "port", "weight", "state"]
    static let flagFields: Set<String> = ["type", "name", "namespace", "session-affinity", "session-affinity-timeout"]

    /// The body of `PUT /v1/service/{id}`; an `id` in the body must be the path's.
    init(json: JSON, id: UInt32) throws(AgentError) {
        guard let object = json.objectValue else {
            throw .invalidField("body", "expected a ServiceSpec object, got \(json.typeName)")
        }
        try KnownKeys.check(object.keys, known: Self.knownFields, kind: "field of ServiceSpec")
        if let bodyID = object["id"], !bodyID.isNull, bodyID.intValue != Int64(id) {
            throw .invalidField("id", "does not match the id \(id) in the path")
        }
        guard let frontendJSON = object["frontend-address"], !frontendJSON.isNull else {
            throw .invalidField("frontend-address", "is required")
        }
        let frontendObject = try frontendJSON.requireObject("frontend-address")
        try KnownKeys.check(
            frontendObject.keys, known: Self.frontendFields, prefix: "frontend-address", kind: "field")
        let address = try Self.address(frontendObject["ip"], field: "frontend-address.ip", family: nil)
        let port = try Self.port(frontendObject["port"], field: "frontend-address.port") ?? 0
        guard port != 0 else { throw .invalidField("frontend-address.port", "is required") }
        // Kubernetes defaults a service port's protocol to TCP.
        let proto = try Self.transport(frontendObject["protocol"], field: "frontend-address.protocol")
        let frontend = ServiceFrontend(address: address, port: port, proto: proto)
        let scope = try Self.optional(frontendObject["scope"]) { json throws(AgentError) in
            try json.requireEnum("frontend-address.scope", Scope.self)
        }
        let items = try Self.optional(object["backend-addresses"]) { json throws(AgentError) in
            try json.requireArray("backend-addresses")
        }
        var backends: [ServiceBackend] = []
        for (index, item) in (items ?? []).enumerated() {
            let backend = try Self.backend(item, field: "backend-addresses[\(index)]", frontend: frontend)
            if let first = backends.firstIndex(where: { $0.address == backend.address && $0.port == backend.port }) {
                let text = AddressPort(address: backend.address, port: backend.port)
                throw .invalidField("backend-addresses[\(index)]", "duplicates backend-addresses[\(first)] (\(text))")
            }
            backends.append(backend)
        }
        self.init(id: id, frontend: frontend, scope: scope ?? .external, backends: backends)
        try readFlags(object["flags"])
    }

    private mutating func readFlags(_ value: JSON?) throws(AgentError) {
        guard let value, !value.isNull else { return }
        let flags = try value.requireObject("flags")
        try KnownKeys.check(flags.keys, known: Self.flagFields, prefix: "flags", kind: "field")
        let type = try Self.optional(flags["type"]) { json throws(AgentError) in
            try json.requireEnum("flags.type", Kind.self)
        }
        kind = type ?? .clusterIP
        name = try Self.metadata(flags["name"], field: "flags.name")
        namespace = try Self.metadata(flags["namespace"], field: "flags.namespace")
        let sessionAffinity = try Self.optional(flags["session-affinity"]) { json throws(AgentError) in
            try json.requireEnum("flags.session-affinity", Affinity.self)
        }
        affinity = sessionAffinity ?? .noAffinity
        if let timeout = flags["session-affinity-timeout"], !timeout.isNull {
            let field = "flags.session-affinity-timeout"
            // As Kubernetes: a timeout without ClientIP affinity is a mistake, not something to ignore.
            guard affinity == .clientIP else { throw .invalidField(field, "applies only to session-affinity ClientIP") }
            affinityTimeout = UInt32(try timeout.requireInt(field, in: 1...Int(Self.maxAffinityTimeout)))
        }
    }

    /// Cilium's spelling: the frontend's protocol upper case, the backend rows in the order given, the affinity
    /// timeout only with ClientIP affinity.
    var json: JSON {
        var flags: [String: JSON] = ["type": .string(kind.rawValue), "session-affinity": .string(affinity.rawValue)]
        if let name { flags["name"] = .string(name) }
        if let namespace { flags["namespace"] = .string(namespace) }
        if affinity == .clientIP { flags["session-affinity-timeout"] = JSON(affinityTimeout) }
        return [
            "id": JSON(id),
            "frontend-address": [
                "ip": .string(frontend.address.description), "port": JSON(frontend.port),
                "protocol": .string(IPProtocol.name(of: frontend.proto)), "scope": .string(scope.rawValue),
            ],
            "backend-addresses": .array(
                backends.map { backend in
                    [
                        "ip": .string(backend.address.description), "port": JSON(backend.port),
                        "weight": JSON(backend.weight), "state": .string(backend.state.rawValue),
                    ]
                }),
            "flags": .object(flags),
        ]
    }

    /// One backend; its port defaults to the frontend's (Kubernetes' targetPort does), its weight to 1.
    private static func backend(_ item: JSON, field: String, frontend: ServiceFrontend) throws(AgentError)
        -> ServiceBackend
    {
        let object = try item.requireObject(field)
        try KnownKeys.check(object.keys, known: backendFields, prefix: field, kind: "field")
        let address = try Self.address(object["ip"], field: "\(field).ip", family: frontend.address.family)
        let port = try Self.port(object["port"], field: "\(field).port") ?? frontend.port
        let weight = try Self.optional(object["weight"]) { json throws(AgentError) in
            UInt16(try json.requireInt("\(field).weight", in: 0...Int(UInt16.max)))
        }
        let state = try Self.optional(object["state"]) { json throws(AgentError) in
            try json.requireEnum("\(field).state", ServiceBackendState.self)
        }
        return ServiceBackend(address: address, port: port, weight: weight ?? 1, state: state ?? .active)
    }

    /// An address of `family` (any family when nil), never the unspecified one: no socket connects to it.
    private static func address(_ value: JSON?, field: String, family: IPAddress.Family?) throws(AgentError)
        -> IPAddress
    {
        guard let value, !value.isNull else { throw .invalidField(field, "is required") }
        let text = try value.requireString(field)
        guard let address = IPAddress(text) else { throw .invalidField(field, "\"\(text)\" is not an IP address") }
        if let family, address.family != family {
            let name = { (family: IPAddress.Family) in family == .ipv4 ? "IPv4" : "IPv6" }
            throw .invalidField(field, "\(address) is \(name(address.family)) but the frontend is \(name(family))")
        }
        guard address.bytes.contains(where: { $0 != 0 }) else {
            throw .invalidField(field, "\(address) is the unspecified address")
        }
        return address
    }

    private static func port(_ value: JSON?, field: String) throws(AgentError) -> UInt16? {
        try optional(value) { json throws(AgentError) in UInt16(try json.requireInt(field, in: 1...65535)) }
    }

    /// TCP or UDP, by any name `IPProtocol` knows in any case ("tcp", "UDP", "6"); TCP when absent.
    private static func transport(_ value: JSON?, field: String) throws(AgentError) -> UInt8 {
        guard let value, !value.isNull else { return IPProtocol.tcp }
        let text = try value.requireString(field)
        guard let number = IPProtocol.number(of: text), number == IPProtocol.tcp || number == IPProtocol.udp else {
            throw .invalidField(field, "\"\(text)\" is not one of TCP, UDP")
        }
        return number
    }

    /// A Kubernetes name: optional, at most 253 bytes, no control characters; empty is absent.
    private static func metadata(_ value: JSON?, field: String) throws(AgentError) -> String? {
        guard let value, !value.isNull else { return nil }
        let text = try value.requireString(field)
        guard text.utf8.count <= 253 else { throw .invalidField(field, "longer than 253 characters") }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalidField(field, "contains a control character")
        }
        return text.isEmpty ? nil : text
    }

    /// `read(value)` unless the field is absent or null.
    private static func optional<T>(_ value: JSON?, _ read: (JSON) throws(AgentError) -> T) throws(AgentError) -> T? {
        guard let value, !value.isNull else { return nil }
        return try read(value)
    }
}
