import AgentAPI
import Foundation

/// One invocation: the CNI_* environment and the network configuration from stdin.
struct CNIRequest {
    enum Command: String {
        case add = "ADD"
        case del = "DEL"
        case check = "CHECK"
        case version = "VERSION"
        case status = "STATUS"
        case gc = "GC"
    }

    static let supportedVersions = ["0.4.0", "1.0.0", "1.1.0"]

    var command: Command
    var containerID: String
    var netns: String
    var ifname: String
    var args: [String: String]
    var config: JSON
    var cniVersion: String

    /// Agent socket: `socket` in the network config, else the agent's default.
    var socket: String { config["socket"]?.stringValue ?? AgentSocket.defaultPath }

    var podNamespace: String? { args["K8S_POD_NAMESPACE"] }
    var podName: String? { args["K8S_POD_NAME"] }

    /// `namespace/pod` when the runtime says: recorded with the address, not its owner (the container id is:
    /// sandboxes of one pod come and go, and a late DEL of an old one must not touch its successor's address).
    var pod: String? {
        guard let namespace = podNamespace, let name = podName else { return nil }
        return "\(namespace)/\(name)"
    }

    /// Who owned the address before allocations carried `pod`: namespace/pod, else the container id.
    var legacyOwner: String { pod ?? containerID }

    var hostInterface: String { Self.hostInterface(containerID: containerID, ifname: ifname) }

    /// Host-side interface: "lxc" and 12 hex digits of a hash of container id and interface (15 characters).
    static func hostInterface(containerID: String, ifname: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array("\(containerID)/\(ifname)".utf8) {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return "lxc" + String(String(hash, radix: 16).suffix(12)).leftPadded(to: 12)
    }

    /// Whether `name` is shaped like the host interfaces this plugin creates.
    static func isHostInterface(_ name: String) -> Bool {
        name.count == 15 && name.hasPrefix("lxc") && name.dropFirst(3).allSatisfy(\.isHexDigit)
    }

    /// Labels for the endpoint: `labels` in the config, `args.cni.labels`, and `runtimeConfig.labels`
    /// (a list of "source:key=value" or an object of key → value, taken as k8s labels).
    var labels: [String] {
        var result: [String] = []
        for source in [config["labels"], config["args"]?["cni"]?["labels"], config["runtimeConfig"]?["labels"]] {
            if let list = source?.arrayValue { result += list.compactMap(\.stringValue) }
            if let object = source?.objectValue {
                result += object.keys.sorted().compactMap { key in object[key]?.stringValue.map { "k8s:\(key)=\($0)" } }
            }
        }
        return result
    }

    /// The pod's named ports (`[{name, port, protocol}]`, the endpoint's `named-ports`): `named-ports` in the
    /// config, `args.cni`, and `runtimeConfig`, in that order; the agent validates them.
    var namedPorts: [JSON] {
        [config["named-ports"], config["args"]?["cni"]?["named-ports"], config["runtimeConfig"]?["named-ports"]]
            .flatMap { $0?.arrayValue ?? [] }
    }

    static func fromEnvironment(_ environment: [String: String], stdin: [UInt8]) throws -> CNIRequest {
        guard let text = environment["CNI_COMMAND"], let command = Command(rawValue: text) else {
            throw CNIError(
                .invalidEnvironment, "CNI_COMMAND is missing or unknown", details: environment["CNI_COMMAND"] ?? "")
        }
        var config: JSON = [:]
        if command != .version || !stdin.isEmpty {
            switch Result(catching: { () throws(AgentError) in try JSON.parse(stdin) }) {
            case .success(let parsed): config = parsed
            case .failure(let error):
                throw CNIError(.decodeFailure, "cannot decode the network configuration", details: error.message)
            }
            guard config.objectValue != nil else {
                throw CNIError(.decodeFailure, "the network configuration is not an object")
            }
        }
        let version = config["cniVersion"]?.stringValue ?? "1.0.0"
        if command != .version, !supportedVersions.contains(version) {
            throw CNIError(
                .incompatibleVersion, "cniVersion \(version) is not supported",
                details: "supported: \(supportedVersions.joined(separator: ", "))")
        }
        var args: [String: String] = [:]
        for pair in (environment["CNI_ARGS"] ?? "").split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { args[parts[0]] = parts[1] }
        }
        func require(_ name: String) throws -> String {
            guard let value = environment[name], !value.isEmpty else {
                throw CNIError(.invalidEnvironment, "\(name) is required for \(command.rawValue)")
            }
            return value
        }
        let needsContainer = [.add, .del, .check].contains(command)
        let containerID = needsContainer ? try require("CNI_CONTAINERID") : ""
        let ifname = needsContainer ? try require("CNI_IFNAME") : ""
        // DEL may come after the namespace is gone; ADD and CHECK need it.
        let netns = command == .add || command == .check ? try require("CNI_NETNS") : (environment["CNI_NETNS"] ?? "")
        return CNIRequest(
            command: command, containerID: containerID, netns: netns, ifname: ifname, args: args, config: config,
            cniVersion: version)
    }
}

extension String {
    func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
