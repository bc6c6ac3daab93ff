import ArgumentParser
import NodeCtlKit

struct EndpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "endpoint",
        abstract: "Inspect the endpoints (pod interfaces) the agent enforces policy on.",
        subcommands: [List.self, Get.self, Labels.self, Policy.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List endpoints, optionally only those with labels.")

        @OptionGroup var global: GlobalOptions

        @Option(
            help: ArgumentHelp(
                "Only endpoints carrying all these labels (repeat, or comma-separate).",
                valueName: "source:key=value"))
        var labels: [String] = []

        func run() throws {
            global.emit(try global.client.endpoints(labels: splitLabels(labels)), table: EndpointViews.list)
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one endpoint.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Endpoint id.") var id: Int64

        func validate() throws { try validateID(id, "endpoint") }

        func run() throws {
            global.emit(try global.client.endpoint(id: id), table: EndpointViews.detail)
        }
    }

    struct Labels: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add or remove an endpoint's labels (its identity follows).")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Endpoint id.") var id: Int64

        @Option(name: .customLong("add"), help: ArgumentHelp("Label to add (repeatable).", valueName: "label"))
        var add: [String] = []

        @Option(name: .customLong("delete"), help: ArgumentHelp("Label to remove (repeatable).", valueName: "label"))
        var delete: [String] = []

        func validate() throws {
            try validateID(id, "endpoint")
            guard !add.isEmpty || !delete.isEmpty else {
                throw ValidationError("nothing to change: give --add and/or --delete")
            }
        }

        func run() throws {
            let endpoint = try global.client.patchEndpointLabels(id: id, add: add, delete: delete)
            global.emit(endpoint, table: EndpointViews.detail)
        }
    }

    struct Policy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the policy entries realized in an endpoint's datapath map, with the rules behind each.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Endpoint id.") var id: Int64

        func validate() throws { try validateID(id, "endpoint") }

        func run() throws {
            global.emit(try global.client.endpointPolicy(id: id), table: EndpointViews.policy)
        }
    }
}

struct IdentityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity",
        abstract: "Inspect security identities (label sets, reserved ones included).",
        subcommands: [List.self, Get.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List identities, optionally only those with labels.")

        @OptionGroup var global: GlobalOptions

        @Option(
            help: ArgumentHelp(
                "Only identities carrying all these labels (repeat, or comma-separate).",
                valueName: "source:key=value"))
        var labels: [String] = []

        func run() throws {
            global.emit(try global.client.identities(labels: splitLabels(labels)), table: IdentityViews.list)
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one identity.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Numeric identity.") var id: Int64

        func validate() throws { try validateID(id, "identity") }

        func run() throws {
            global.emit(try global.client.identity(id: id), table: IdentityViews.detail)
        }
    }
}

/// Labels given as repeated options and/or comma-separated lists, blanks dropped.
func splitLabels(_ values: [String]) -> [String] {
    values.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters() }.filter { !$0.isEmpty }
}

func validateID(_ id: Int64, _ what: String) throws {
    guard id >= 0, id <= Int64(UInt32.max) else {
        throw ValidationError("\(what) id must be between 0 and \(UInt32.max), got \(id)")
    }
}

extension StringProtocol {
    func trimmingCharacters() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
