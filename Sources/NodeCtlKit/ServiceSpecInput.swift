import AgentAPI
import Yams

/// The ServiceSpec `nodectl service update` sends: read from a YAML or JSON file, or built from flags. Only what
/// nodectl must take apart itself (the `ip:port` texts) is checked here; the agent checks the rest and names the
/// field at fault.
public enum ServiceSpecInput {
    /// One ServiceSpec object from `path` ("-": standard input), YAML or JSON.
    public static func load(
        path: String,
        standardInput: () throws(InputError) -> [UInt8] = { () throws(InputError) in
            try PolicyFiles.readAll(fd: 0, name: "standard input")
        }
    ) throws(InputError) -> JSON {
        let name = path == "-" ? "standard input" : path
        let bytes = try path == "-" ? standardInput() : PolicyFiles.readFile(path)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw InputError("\(name): not UTF-8 text") }
        let value: JSON
        if text.unicodeScalars.first(where: { !$0.properties.isWhitespace && $0 != "\u{FEFF}" }) == "{" {
            do {
                value = try JSON.parse(text)
            } catch {
                throw InputError("\(name): \(error.message)")
            }
        } else {
            let node: Node?
            do {
                node = try Yams.compose(yaml: text)
            } catch {
                throw InputError("\(name): \(error)")
            }
            if let node { value = try YAMLConversion.json(from: node) } else { value = .null }
        }
        guard value.objectValue != nil else {
            throw InputError("\(name): expected one ServiceSpec object, found \(value.typeName)")
        }
        return value
    }

    /// A ServiceSpec from `--frontend IP:PORT`, `--backends IP:PORT,...` and the optional flags. `states` holds
    /// one state for every backend, or a single one for all of them.
    public static func spec(
        frontend: String, backends: [String], protocol proto: String? = nil, type: String? = nil,
        states: [String] = [], name: String? = nil, namespace: String? = nil, sessionAffinity: String? = nil,
        sessionAffinityTimeout: Int? = nil
    ) throws(InputError) -> JSON {
        guard let front = AddressPort(frontend) else {
            throw InputError("--frontend: expected IP:PORT ([IPv6]:PORT for IPv6), got \"\(frontend)\"")
        }
        let items = backends.flatMap { $0.split(separator: ",") }.map(String.init).filter { !$0.isEmpty }
        var addresses: [AddressPort] = []
        for item in items {
            guard let address = AddressPort(item) else {
                throw InputError("--backends: expected IP:PORT ([IPv6]:PORT for IPv6), got \"\(item)\"")
            }
            addresses.append(address)
        }
        let stateList = states.flatMap { $0.split(separator: ",") }.map(String.init).filter { !$0.isEmpty }
        guard stateList.count <= 1 || stateList.count == addresses.count else {
            let counts = "\(stateList.count) states for \(addresses.count) backends"
            throw InputError("--states: \(counts) (give one for each, or one for all)")
        }
        let backendJSON = addresses.enumerated().map { index, address -> JSON in
            var object: [String: JSON] = ["ip": .string(address.address.description), "port": JSON(address.port)]
            if !stateList.isEmpty { object["state"] = .string(stateList[stateList.count == 1 ? 0 : index]) }
            return .object(object)
        }
        var frontendJSON: [String: JSON] = ["ip": .string(front.address.description), "port": JSON(front.port)]
        if let proto { frontendJSON["protocol"] = .string(proto) }
        let flags = JSON.object(dropNils: [
            ("type", type.map(JSON.string)), ("name", name.map(JSON.string)), ("namespace", namespace.map(JSON.string)),
            ("session-affinity", sessionAffinity.map(JSON.string)),
            ("session-affinity-timeout", sessionAffinityTimeout.map { JSON($0) }),
        ])
        var spec: [String: JSON] = [
            "frontend-address": .object(frontendJSON), "backend-addresses": .array(backendJSON),
        ]
        if flags.objectValue?.isEmpty == false { spec["flags"] = flags }
        return .object(spec)
    }
}
