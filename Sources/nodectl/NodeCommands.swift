import ArgumentParser
import NodeCtlKit

struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "The nodes of the cluster this agent knows (cluster mode; standalone, only this node).",
        subcommands: [List.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the nodes: name, address, pod CIDRs, when their entry was last seen.")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            global.emit(try global.client.clusterNodes(), table: ClusterViews.nodes)
        }
    }
}
