import AgentAPI
import Foundation
import NodeCtlKit
import Yams

/// The files under deploy/ as the tests read them: Kubernetes manifests as JSON documents, the systemd unit's
/// settings, and wrappers that start the built agent the way a deployment would.
enum DeployFiles {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("deploy").path

    /// Every document of a YAML file under deploy/.
    static func yamlDocuments(_ relativePath: String) throws -> [JSON] {
        let text = try String(contentsOfFile: "\(root)/\(relativePath)", encoding: .utf8)
        var documents: [JSON] = []
        var sequence = try Yams.compose_all(yaml: text)
        while let node = sequence.next() { documents.append(try YAMLConversion.json(from: node)) }
        return documents
    }

    /// The document of `kind` named `name` in a manifest.
    static func resource(_ relativePath: String, kind: String, name: String) throws -> JSON {
        guard
            let found = try yamlDocuments(relativePath).first(where: {
                $0["kind"]?.stringValue == kind && $0["metadata"]?["name"]?.stringValue == name
            })
        else { throw AgentHarnessError("no \(kind) \(name) in deploy/\(relativePath)") }
        return found
    }

    /// The DaemonSet's pod spec.
    static func podSpec() throws -> JSON {
        let daemonSet = try resource("kubernetes/daemonset.yaml", kind: "DaemonSet", name: "nodeagent")
        guard let spec = daemonSet["spec"]?["template"]?["spec"] else {
            throw AgentHarnessError("the DaemonSet has no pod template")
        }
        return spec
    }

    /// A container (or init container) of the DaemonSet by name.
    static func container(_ name: String) throws -> JSON {
        let spec = try podSpec()
        let all = (spec["initContainers"]?.arrayValue ?? []) + (spec["containers"]?.arrayValue ?? [])
        guard let found = all.first(where: { $0["name"]?.stringValue == name }) else {
            throw AgentHarnessError("the DaemonSet has no container \(name)")
        }
        return found
    }

    /// Values of `key` in a systemd unit file under deploy/systemd/, in order (a key may repeat).
    static func unitValues(_ unit: String, _ key: String) throws -> [String] {
        let text = try String(contentsOfFile: "\(root)/systemd/\(unit)", encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == key else { return nil }
            return parts[1].trimmingCharacters(in: .whitespaces)
        }
    }

    /// Writes an executable shell script that runs `command` with the script's arguments appended; for
    /// `AgentProcess(binary:)`, which runs it in the node namespace.
    static func wrapper(at path: String, _ command: String) throws -> String {
        try "#!/bin/sh\nexec \(command) \"$@\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }
}
