import AgentAPI
import ArgumentParser
import NodeCtlKit

struct ConntrackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ct",
        abstract: "List and flush the datapath's connection tracking entries.",
        subcommands: [List.self, Flush.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List conntrack entries, optionally filtered.")

        @OptionGroup var global: GlobalOptions
        @Option(help: "Only entries of this endpoint id.") var endpoint: Int?
        @Option(help: "Only entries with this address at either end.") var ip: String?
        @Option(help: "Only entries with this port at either end.") var port: Int?
        @Option(help: "Only entries of this protocol (TCP, UDP, ICMP, ICMPv6, SCTP).") var `protocol`: String?
        @Option(help: "Show at most this many entries.") var limit: Int = 1000

        func validate() throws {
            if let port, !(0...65535).contains(port) { throw ValidationError("--port must be 0-65535, got \(port)") }
            guard (1...10000).contains(limit) else { throw ValidationError("--limit must be 1-10000, got \(limit)") }
        }

        func run() throws {
            var query: [(String, String)] = [("limit", "\(limit)")]
            if let endpoint { query.append(("endpoint", "\(endpoint)")) }
            if let ip { query.append(("ip", ip)) }
            if let port { query.append(("port", "\(port)")) }
            if let proto = `protocol` { query.append(("protocol", proto)) }
            let client = global.client
            global.emit(try client.request(.GET, "/v1/ct", query: query), table: ConntrackViews.list)
        }
    }

    struct Flush: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete all conntrack entries, or one endpoint's.")

        @OptionGroup var global: GlobalOptions
        @Option(help: "Only this endpoint's entries.") var endpoint: Int?

        func run() throws {
            let query = endpoint.map { [("endpoint", "\($0)")] } ?? []
            let client = global.client
            let result = try client.request(.DELETE, "/v1/ct", query: query)
            global.emit(result) { "Deleted \(Cells.text($0["deleted"])) entries\n" }
        }
    }
}
