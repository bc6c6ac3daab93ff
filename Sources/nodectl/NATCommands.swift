import ArgumentParser
import NodeCtlKit

struct NATCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nat",
        abstract: "Inspect and flush the masquerading (NAT) mappings of pod traffic leaving the node.",
        subcommands: [List.self, Flush.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List NAT mappings: original source, translated source, destination, state, age, expiry.",
            discussion: "Pages through all mappings unless --limit caps the number shown.")

        @OptionGroup var global: GlobalOptions

        @Option(help: "Show at most this many mappings.")
        var limit: Int?

        func validate() throws {
            if let limit, limit <= 0 { throw ValidationError("--limit must be a positive number, got \(limit)") }
        }

        func run() throws {
            let result = try global.client.allNATMappings(limit: limit)
            global.emit(result, table: NATViews.list)
            if global.output == .table, result["next-cursor"]?.stringValue != nil {
                printNote("(more mappings not shown: raise --limit to see them)")
            }
        }
    }

    struct Flush: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete every NAT mapping (both halves of each).",
            discussion: "Masqueraded connections that are open lose their translation and break.")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            global.emit(try global.client.flushNAT(), table: NATViews.flush)
        }
    }
}
