import AgentAPI

/// How a command prints what the agent answered: aligned tables for people, JSON or YAML for scripts.
public enum OutputFormat: String, Sendable, CaseIterable {
    case table
    case json
    case yaml

    /// Renders `value`: as JSON (pretty, keys sorted) or YAML, or through `table` for the table format.
    /// The result ends with a newline.
    public func render(_ value: JSON, table: (JSON) -> String) -> String {
        switch self {
        case .table:
            return table(value)
        case .json:
            return value.serialized(pretty: true) + "\n"
        case .yaml:
            return YAMLConversion.yaml(from: value)
        }
    }
}
