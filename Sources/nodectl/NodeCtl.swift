import ArgumentParser

/// The root command; everything happens in subcommands.
@main
struct NodeCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodectl",
        abstract: "Inspect and control the nodeagent network-security agent on this node.",
        discussion: """
            nodectl talks to the agent's REST API over its Unix socket: --socket, else $NODEAGENT_SOCK, else \
            \(GlobalOptions.defaultSocket).

            Exit status: 0 on success; 1 when the agent is not reachable or answers with an error (its message \
            is printed on standard error as "Error: ..."); 64 for invalid usage.
            """,
        version: "0.1.0",
        subcommands: [
            StatusCommand.self, MapCommand.self, ConfigCommand.self, EndpointCommand.self, IdentityCommand.self,
            PolicyCommand.self, ServiceCommand.self, ConntrackCommand.self, NATCommand.self, IPAMCommand.self,
            ObserveCommand.self,
            MetricsCommand.self, NodeCommand.self, PreflightCommand.self,
        ])

    // Declared here as well as in each subcommand so the options may come before the subcommand name
    // ("nodectl -o json status"); the parser hands the same values to the subcommand's group.
    @OptionGroup var global: GlobalOptions
}
