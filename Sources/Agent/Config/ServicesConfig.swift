import AgentAPI
import DatapathCore

/// The `services` section: whether the agent runs the socket load balancer, at which cgroup v2 directory its
/// hooks attach, and how backends are chosen. Without the section the load balancer runs with the defaults.
public struct ServicesConfig: Sendable, Equatable {
    /// Off: services are stored and answered with `realized: false`, nothing attaches to a cgroup.
    public var enabled = true
    /// The cgroup v2 directory the hooks attach to: every process in it or below has its sockets translated.
    /// Mounted by the agent when it is not a cgroup v2 directory (Cilium's /run/cilium/cgroupv2).
    public var cgroupRoot = CgroupV2.defaultRoot
    /// How a new connection picks its backend: at random among the active ones, or through a Maglev lookup table
    /// (consistent hashing: a backend set change moves few connections).
    public var backendSelection = BackendSelection.Name.random
    /// Entries of each service's Maglev table: a prime, as Cilium accepts them (`--bpf-lb-maglev-table-size`).
    public var maglevTableSize = BackendSelection.defaultMaglevTableSize
    /// The node's external interfaces whose tc hooks translate NodePort, ExternalIPs and LoadBalancer services for
    /// clients outside the node (Cilium's `devices`); nil: the NAT plugin's `interface` when it names one, else
    /// none. An empty list turns the default off.
    public var devices: [String]?

    /// What the load balancer is told to use.
    public var selection: BackendSelection {
        backendSelection == .maglev ? .maglev(tableSize: maglevTableSize) : .random
    }

    /// Cilium's accepted Maglev table sizes: primes, each about twice the one before.
    public static let maglevTableSizes = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071]
    static let keys: Set<String> = ["enabled", "cgroup-root", "backend-selection", "maglev-table-size", "devices"]

    public init() {}

    /// Parses the section; 400-style errors name the field (`services.maglev-table-size`).
    public init(json: JSON) throws(AgentError) {
        let object = try json.requireObject("services")
        try KnownKeys.check(object.keys, known: Self.keys, prefix: "services", kind: "services option")
        if let value = object["enabled"] {
            guard let flag = value.boolValue else {
                throw AgentError.invalidField("services.enabled", "expected a boolean, got \(value.typeName)")
            }
            enabled = flag
        }
        if let value = object["cgroup-root"] {
            let path = try value.requireString("services.cgroup-root")
            guard path.hasPrefix("/"), path.count > 1 else {
                throw AgentError.invalidField("services.cgroup-root", "expected an absolute path, got \"\(path)\"")
            }
            cgroupRoot = path
        }
        if let value = object["backend-selection"] {
            backendSelection = try value.requireEnum("services.backend-selection", BackendSelection.Name.self)
        }
        if let value = object["maglev-table-size"] {
            let size = try value.requireInt("services.maglev-table-size", in: 1...Self.maglevTableSizes.last!)
            guard Self.maglevTableSizes.contains(size) else {
                throw AgentError.invalidField(
                    "services.maglev-table-size",
                    "\(size) is not one of \(Self.maglevTableSizes.map(String.init).joined(separator: ", "))")
            }
            maglevTableSize = size
        }
        if let value = object["devices"] {
            devices = try value.requireArray("services.devices").enumerated().map { index, item throws(AgentError) in
                let field = "services.devices[\(index)]"
                let name = try item.requireString(field)
                // IFNAMSIZ less its terminating zero; the kernel refuses '/', ':' and whitespace in names.
                guard (1...15).contains(name.utf8.count), !name.contains(where: { "/: \t\n".contains($0) }) else {
                    throw AgentError.invalidField(field, "\"\(name)\" is not an interface name")
                }
                return name
            }
        }
    }

    /// The devices in effect: `devices` when given, else the NAT plugin's interface (`plugins.nat.interface`).
    public func effectiveDevices(plugins: JSON) -> [String] {
        if let devices { return devices }
        return plugins.objectValue?["nat"]?.objectValue?["interface"]?.stringValue.map { [$0] } ?? []
    }

    /// The section as `GET /v1/healthz` shows it beside whether the load balancer runs.
    public var json: JSON {
        [
            "enabled": .bool(enabled), "cgroup-root": .string(cgroupRoot),
            "backend-selection": .string(backendSelection.rawValue), "maglev-table-size": .int(Int64(maglevTableSize)),
        ]
    }
}
