import AgentAPI
import ArgumentParser
import NodeCtlKit

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Show or change the agent's runtime configuration.",
        subcommands: [Get.self, SetOptions.self])

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show every configuration option and its value.")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            global.emit(try global.client.config(), table: { Cells.fieldList(Cells.flatten($0)) })
        }
    }

    struct SetOptions: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Change configuration options; prints the whole new configuration.",
            discussion: """
                Each VALUE is read as JSON when it is valid JSON (true, 30, null, "quoted", [..], {..}) and as \
                a plain string otherwise, so policy-enforcement=always and log-level=debug need no quotes; \
                quote a string that looks like a number: key='"123"'.
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("Options to set.", valueName: "key=value"))
        var assignments: [String]

        func validate() throws {
            _ = try Self.parse(assignments)
        }

        func run() throws {
            let changes = try Self.parse(assignments)
            global.emit(try global.client.patchConfig(changes), table: { Cells.fieldList(Cells.flatten($0)) })
        }

        static func parse(_ assignments: [String]) throws -> [String: JSON] {
            guard !assignments.isEmpty else { throw ValidationError("give at least one key=value") }
            var changes: [String: JSON] = [:]
            for assignment in assignments {
                guard let eq = assignment.firstIndex(of: "="), eq != assignment.startIndex else {
                    throw ValidationError("expected key=value, got \"\(assignment)\"")
                }
                let key = String(assignment[..<eq])
                let raw = String(assignment[assignment.index(after: eq)...])
                guard changes[key] == nil else { throw ValidationError("\(key) is given more than once") }
                changes[key] = (try? JSON.parse(raw)) ?? .string(raw)
            }
            return changes
        }
    }
}
