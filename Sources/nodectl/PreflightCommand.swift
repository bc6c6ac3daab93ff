import AgentAPI
import ArgumentParser
import Foundation
import NodeCtlKit
import Preflight

/// Runs the agent's kernel preflight on this machine, without an agent: before installing one, or to see why one
/// refuses to start.
struct PreflightCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preflight",
        abstract: "Check this machine's kernel for what the agent needs (no running agent needed).",
        discussion: """
            Runs the checks the agent runs before it starts: kernel version, BTF, bpffs at the pin root, cgroup v2, \
            tc clsact and tcx, and every BPF program type, map type and helper the agent's programs use (probed \
            through libbpf), for the features the agent's configuration turns on. Needs root, as the agent does.

            Exit status: 0 when every required feature is present, 1 when one is missing.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(
        name: .customLong("bpf-root"),
        help: ArgumentHelp(
            "The agent's pin root (default: the config's, else /sys/fs/bpf/nodeagent).", valueName: "path"))
    var bpfRoot: String?

    @Option(
        help: ArgumentHelp(
            "The agent's configuration file (JSON): its bpf-root, plugins and cluster sections decide what is needed.",
            valueName: "file"))
    var config: String?

    func run() throws {
        var plugins: JSON = [:]
        var cluster = false
        var services = true
        var root = KernelFilesystems.defaultPinRoot
        if let config {
            let document: JSON
            do {
                document = try JSON.parse(try String(contentsOfFile: config, encoding: .utf8))
            } catch {
                throw ValidationError("--config \(config): \(error)")
            }
            plugins = document["plugins"] ?? [:]
            cluster = document["cluster"] != nil
            services = document["services"]?["enabled"]?.boolValue ?? true
            root = document["bpf-root"]?.stringValue ?? root
        }
        let report = PreflightReport.evaluate(
            LiveKernelProbe(pinRoot: bpfRoot ?? root),
            for: AgentFeature.configured(plugins: plugins, cluster: cluster, services: services))
        global.emit(report.json, table: PreflightView.render)
        if !report.unknown.isEmpty {
            printNote(
                "\(report.unknown.count) required check(s) could not be probed "
                    + "(\(report.unknown.map(\.name).joined(separator: ", "))): run as root, as the agent runs")
        }
        if let refusal = report.refusal {
            printNote(refusal)
            throw ExitCode.failure
        }
    }
}
