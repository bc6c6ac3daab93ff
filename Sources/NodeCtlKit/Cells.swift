import AgentAPI

/// Turning JSON values into table cells and aligned "field: value" lists.
public enum Cells {
    /// The placeholder for a missing or null value, so columns stay readable and `awk`-able.
    public static let none = "-"

    /// A value as one table cell: strings as they are, numbers and booleans in JSON spelling, lists of scalars
    /// comma-joined, anything nested as compact JSON.
    public static func text(_ value: JSON?) -> String {
        guard let value else { return none }
        switch value {
        case .null: return none
        case .string(let s): return s.isEmpty ? none : s
        case .int, .double, .bool: return value.serialized()
        case .array(let elements):
            if elements.isEmpty { return none }
            if elements.allSatisfy(\.isScalar) { return elements.map { text($0) }.joined(separator: ",") }
            return value.serialized()
        case .object(let members):
            return members.isEmpty ? none : value.serialized()
        }
    }

    /// Flattens nested objects into dotted names ("addressing.ipv4") and arrays of objects into indexed names
    /// ("plugins[0].name"); arrays of scalars stay one comma-joined value. Sorted by name.
    public static func flatten(_ value: JSON, prefix: String = "") -> [(name: String, value: String)] {
        switch value {
        case .object(let members) where !members.isEmpty:
            return members.keys.sorted().flatMap { key in
                flatten(members[key]!, prefix: prefix.isEmpty ? key : "\(prefix).\(key)")
            }
        case .array(let elements) where !elements.isEmpty && !elements.allSatisfy(\.isScalar):
            return elements.enumerated().flatMap { i, element in flatten(element, prefix: "\(prefix)[\(i)]") }
        default:
            return [(prefix.isEmpty ? "value" : prefix, text(value))]
        }
    }

    /// Aligned "name:   value" lines, names padded to the longest.
    public static func fieldList(_ fields: [(name: String, value: String)]) -> String {
        let width = fields.map(\.name.count).max() ?? 0
        return fields.map { field in
            let pad = String(repeating: " ", count: width - field.name.count + 2)
            return "\(field.name):\(pad)\(field.value)"
        }.map { line in
            var line = line
            while line.last == " " { line.removeLast() }
            return line + "\n"
        }.joined()
    }
}

extension JSON {
    /// True for null, booleans, numbers and strings.
    var isScalar: Bool {
        switch self {
        case .array, .object: return false
        default: return true
        }
    }
}
