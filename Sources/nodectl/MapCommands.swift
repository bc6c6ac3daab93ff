import ArgumentParser
import NodeCtlKit

struct MapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "Inspect the BPF maps the agent manages.",
        subcommands: [List.self, Get.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the maps: name, owner, type, key and value sizes, capacity and current entries.")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            global.emit(try global.client.maps(), table: MapViews.list)
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a map's entries, decoded into named fields where the agent knows the layout.",
            discussion: "Pages through the whole map unless --limit caps the number of entries shown.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "Map name, e.g. na_ipcache (see 'nodectl map list').")
        var name: String

        @Option(help: "Show at most this many entries.")
        var limit: Int?

        func validate() throws {
            guard !name.isEmpty else { throw ValidationError("map name must not be empty") }
            if let limit, limit <= 0 { throw ValidationError("--limit must be a positive number, got \(limit)") }
        }

        func run() throws {
            let result = try global.client.mapEntries(named: name, limit: limit)
            global.emit(result, table: MapViews.entries)
            if global.output == .table, result["next-cursor"]?.stringValue != nil {
                printNote("(more entries not shown: raise --limit to see them)")
            }
        }
    }
}
