import Agent
import ArgumentParser
import CIDRPolicy
import ConntrackGC
import DatapathCore
import FoundationEssentials
import IPAMClusterPool
import Logging
import NAT

/// The datapath plugins linked into this build; `plugins.<name>.enabled` in the config turns each on or off.
func linkedPlugins() -> [any DatapathPlugin] {
    [ConntrackGCPlugin(), CIDRPolicyPlugin(), NATPlugin(), IPAMClusterPoolPlugin()]
}

@main
struct NodeAgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodeagent",
        abstract: "Node-local eBPF network-security agent: endpoints, identities and policies enforced in the kernel.",
        version: Daemon.version,
        subcommands: [Run.self, Cleanup.self, PreflightCommand.self],
        defaultSubcommand: Run.self)
}

struct CommonOptions: ParsableArguments {
    @Option(help: "Unix socket of the REST API.")
    var socket: String?

    @Option(name: .customLong("state-dir"), help: "Directory for the agent's persistent state.")
    var stateDir: String?

    @Option(name: .customLong("bpf-root"), help: "bpffs directory where maps are pinned.")
    var bpfRoot: String?

    @Option(
        name: .customLong("cgroup-root"),
        help: "cgroup v2 directory the socket load balancer attaches to (services.cgroup-root).")
    var cgroupRoot: String?

    @Option(help: "Configuration file (JSON).")
    var config: String?

    /// Defaults, then the config file, then flags.
    func resolve() throws -> AgentConfig {
        var resolved = try config.map { try AgentConfig.load(file: $0) } ?? AgentConfig()
        if let socket { resolved.socketPath = socket }
        if let stateDir { resolved.stateDir = stateDir }
        if let bpfRoot { resolved.bpfRoot = bpfRoot }
        if let cgroupRoot {
            guard cgroupRoot.hasPrefix("/"), cgroupRoot.count > 1 else {
                throw AgentError.invalidField("cgroup-root", "expected an absolute path, got \"\(cgroupRoot)\"")
            }
            resolved.services.cgroupRoot = cgroupRoot
        }
        return resolved
    }

    /// The resolved configuration, a bad value reported as a usage error (the field named, exit status 64).
    func validated() throws -> AgentConfig {
        do {
            return try resolve()
        } catch let error as AgentError {
            throw ValidationError(error.message)
        }
    }
}

extension NodeAgentCommand {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the agent (the default).")

        @OptionGroup var options: CommonOptions

        func run() throws {
            let config = try options.validated()
            let level = LogLevelBox(.info)
            LoggingSystem.bootstrap { StructuredLogHandler(label: $0, level: level) }
            Daemon.prepareProcess()
            let status = Daemon(config: config, plugins: linkedPlugins(), logLevel: level).run()
            throw ExitCode(status)
        }
    }

    struct PreflightCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "preflight",
            abstract: "Check the kernel features the configured agent needs, as the agent does before it starts.",
            discussion: "Exit status: 0 when everything required is present, 1 when something is missing.")

        @OptionGroup var options: CommonOptions

        func run() throws {
            let config = try options.validated()
            let report = config.preflight(linked: linkedPlugins().map(\.name))
            print("kernel \(report.kernel), features: \(report.features.map(\.rawValue).joined(separator: ", "))")
            for line in report.lines() { print(line) }
            print(report.refusal ?? "ok: every required kernel feature is present")
            throw ExitCode(report.passed ? 0 : 1)
        }
    }

    struct Cleanup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Remove everything the agent installed: tc programs, pinned maps, the socket and (unless kept) state.")

        @OptionGroup var options: CommonOptions

        @Flag(name: .customLong("keep-state"), help: "Keep the state directory.")
        var keepState = false

        func run() throws {
            let config = try options.resolve()
            LoggingSystem.bootstrap { StructuredLogHandler(label: $0, level: LogLevelBox(.info)) }
            let report = try Cleaner(config: config).run(keepState: keepState)
            print(report)
        }
    }
}
