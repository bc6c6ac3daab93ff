import ArgumentParser
import NodeCtlKit

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "Show the agent's health: version, kernel, BPF filesystem, endpoints, policy revision, cluster, plugins.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        global.emit(try global.client.healthz(), table: StatusView.render)
    }
}
