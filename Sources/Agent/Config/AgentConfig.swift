import Cluster
import DatapathCore
import FoundationEssentials
import Policy
import Preflight

/// The agent's configuration: built-in defaults, then the config file (JSON), then command-line flags.
/// Runtime options (`PATCH /v1/config`) are the subset in `RuntimeOptions`.
public struct AgentConfig: Sendable {
    public static let defaultSocket = AgentSocket.defaultPath
    public static let defaultStateDir = "/var/lib/nodeagent"
    public static let defaultBPFRoot = KernelFilesystems.defaultPinRoot

    public var socketPath = defaultSocket
    public var stateDir = defaultStateDir
    public var bpfRoot = defaultBPFRoot
    /// Group owning the API socket (mode 0660); nil keeps root's group.
    public var socketGroup: String?
    public var apiThreads = 4
    public var maxBodyBytes = 1 << 20
    /// Max entries per datapath map, overriding the object's defaults (e.g. "na_ct": 1048576).
    public var mapSizes: [String: UInt32] = [:]
    /// Entries each endpoint's policy map holds.
    public var policyMapEntries = 16384
    /// Label keys that do not count for identities (pod-unique ones), replacing the built-in list when given.
    public var identityIgnoredLabels: [String]?
    /// The `plugins` section, handed to the plugin registry.
    public var plugins: JSON = [:]
    /// Recent flows kept for `GET /v1/flows`.
    public var flowBufferSize = 4096
    /// `host:port` where Prometheus can scrape `GET /metrics` over TCP (loopback, or the node IP when configured so);
    /// nil: only `/v1/metrics` on the socket.
    public var metricsAddress: String?
    public var runtime = RuntimeOptions()
    /// The `cluster` section: identities, pod addresses, nodes shared through etcd. Nil: standalone.
    public var cluster: ClusterConfig?
    /// The `services` section: the socket load balancer (on unless `services.enabled` is false).
    public var services = ServicesConfig()

    public init() {}

    static let fileKeys: Set<String> = [
        "socket", "state-dir", "bpf-root", "socket-group", "api-threads", "max-body-bytes", "map-sizes",
        "policy-map-entries", "identity-ignored-labels", "plugins", "flow-buffer-size", "metrics-address", "cluster",
        "services",
    ]

    /// Reads a JSON config file. Unknown keys and wrong types are rejected, naming the key.
    public static func load(file path: String) throws -> AgentConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgentError.invalidField("config", "cannot read \(path)")
        }
        let json: JSON
        do {
            json = try JSON.parse([UInt8](data))
        } catch let error as AgentError {
            throw AgentError.invalidField("config", "\(path): \(error.message)")
        }
        var config = AgentConfig()
        try config.apply(file: json)
        return config
    }

    mutating func apply(file json: JSON) throws {
        guard let object = json.objectValue else { throw AgentError.invalidField("config", "expected a JSON object") }
        try KnownKeys.check(object.keys, known: Self.fileKeys.union(RuntimeOptions.keys), kind: "option")
        var runtimePart: [String: JSON] = [:]
        for (key, value) in object {
            if RuntimeOptions.keys.contains(key) {
                runtimePart[key] = value
                continue
            }
            switch key {
            case "socket": socketPath = try value.requireString(key)
            case "state-dir": stateDir = try value.requireString(key)
            case "bpf-root": bpfRoot = try value.requireString(key)
            case "socket-group": socketGroup = try value.requireString(key)
            case "api-threads": apiThreads = try value.requireInt(key, in: 1...64)
            case "max-body-bytes": maxBodyBytes = try value.requireInt(key, in: 1024...(64 << 20))
            case "policy-map-entries": policyMapEntries = try value.requireInt(key, in: 16...1_048_576)
            case "identity-ignored-labels":
                identityIgnoredLabels = try value.requireArray(key).enumerated().map { index, item in
                    try item.requireString("\(key)[\(index)]")
                }
            case "map-sizes":
                guard let sizes = value.objectValue else { throw AgentError.invalidField(key, "expected an object") }
                for (name, size) in sizes {
                    // One slot per (reason, direction), indexed by the datapath: a smaller array would lose counts.
                    guard name != "na_metrics" else {
                        throw AgentError.invalidField("\(key).\(name)", "na_metrics has a fixed size")
                    }
                    mapSizes[name] = UInt32(try size.requireInt("\(key).\(name)", in: 1...16_777_216))
                }
            case "plugins": plugins = value
            case "cluster": cluster = try ClusterConfig(json: value)
            case "services": services = try ServicesConfig(json: value)
            case "flow-buffer-size": flowBufferSize = try value.requireInt(key, in: 16...1_048_576)
            case "metrics-address":
                metricsAddress = try MetricsListener.Address(parsing: try value.requireString(key)).description
            default: break
            }
        }
        try runtime.apply(patch: .object(runtimePart))
    }
}

/// Options that can change while the agent runs.
public struct RuntimeOptions: Sendable, Equatable {
    public enum LogLevel: String, Sendable, CaseIterable { case trace, debug, info, notice, warning, error, critical }

    public var policyEnforcement = EnforcementMode.default
    public var logLevel = LogLevel.info
    /// Which allowed new connections produce a flow event: 1 every one, N one in N (at random), 0 none. Drops are
    /// always reported. Each event costs the node a ring-buffer record and the agent its decoding, which shows on
    /// nodes opening tens of thousands of connections a second.
    public var allowedFlowSampling = 1
    /// At most one drop event per flow (tuple, direction, reason, endpoint) in this many milliseconds, limited in the
    /// kernel like Cilium's monitor aggregation, so a flood of denied packets does not flood the ring buffer and
    /// the agent; 0 reports every drop. The drop counters count every packet either way.
    var dropEventInterval = Milliseconds(1000)
    /// Whether the node's own traffic to its pods (identity host: kubelet probes) passes their ingress policy
    /// (`always`, Cilium's default) or is subject to it like any peer (`policy`).
    public var allowLocalhost = AllowLocalhost.always
    /// How a packet from one endpoint reaches another endpoint of this node once both policies allow it: `bpf`
    /// (Cilium's BPF host routing) hands it from the source's tc hook straight into the destination pod, past the
    /// node's IP stack and netfilter; `kernel` leaves it to the node's routing, as before. Either way both
    /// endpoints' policies decide it in the kernel.
    public var hostRouting = HostRouting.bpf

    public enum AllowLocalhost: String, Sendable, CaseIterable { case always, policy }
    public enum HostRouting: String, Sendable, CaseIterable { case bpf, kernel }

    static let keys: Set<String> = [
        "policy-enforcement", "log-level", "allowed-flow-sampling", "drop-event-interval", "allow-localhost",
        "host-routing",
    ]
    static let maxAllowedFlowSampling = 1_000_000
    static let maxDropEventInterval = 3_600_000

    public init() {}

    public var json: JSON {
        [
            "policy-enforcement": .string(policyEnforcement.rawValue), "log-level": .string(logLevel.rawValue),
            "allowed-flow-sampling": .int(Int64(allowedFlowSampling)), "drop-event-interval": dropEventInterval.json,
            "allow-localhost": .string(allowLocalhost.rawValue), "host-routing": .string(hostRouting.rawValue),
        ]
    }

    /// Applies a partial update; nothing changes unless every key and value is valid.
    public mutating func apply(patch: JSON) throws {
        guard let object = patch.objectValue else {
            throw AgentError.invalidField("body", "expected a JSON object of options")
        }
        try KnownKeys.check(object.keys, known: Self.keys, kind: "or read-only option")
        var next = self
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "policy-enforcement":
                next.policyEnforcement = try value.requireEnum(key, EnforcementMode.self)
            case "log-level":
                next.logLevel = try value.requireEnum(key, LogLevel.self)
            case "allowed-flow-sampling":
                next.allowedFlowSampling = try value.requireInt(key, in: 0...Self.maxAllowedFlowSampling)
            case "drop-event-interval":
                next.dropEventInterval = try Milliseconds(value, field: key, max: Self.maxDropEventInterval)
            case "allow-localhost":
                next.allowLocalhost = try value.requireEnum(key, AllowLocalhost.self)
            case "host-routing":
                next.hostRouting = try value.requireEnum(key, HostRouting.self)
            default:
                continue  // checked above
            }
        }
        self = next
    }
}
