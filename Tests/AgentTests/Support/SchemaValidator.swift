import AgentAPI
import Foundation

/// Checks a JSON value against an OpenAPI 3.0 schema: $ref, type, nullable, enum, required, properties,
/// additionalProperties, items, oneOf/anyOf/allOf, minimum/maximum, minLength/maxLength, pattern.
///
/// Stricter than OpenAPI on one point, on purpose: an object schema that lists `properties` and says nothing
/// about `additionalProperties` accepts no other keys, so a field the agent sends but the spec does not document
/// is reported.
struct SchemaValidator {
    let document: OpenAPIDocument

    /// One message per violation, each starting with the JSON path ("$.entries[0].port").
    func violations(of value: JSON, against schema: JSON, at path: String = "$") -> [String] {
        if let reference = schema["$ref"]?.stringValue {
            guard let resolved = document.resolve(reference) else { return ["\(path): unresolved \(reference)"] }
            return violations(of: value, against: resolved, at: path)
        }
        if value.isNull {
            return schema["nullable"]?.boolValue == true ? [] : ["\(path): null, but the schema is not nullable"]
        }
        var problems: [String] = []
        if let all = schema["allOf"]?.arrayValue {
            for part in all { problems += violations(of: value, against: part, at: path) }
        }
        if let any = schema["anyOf"]?.arrayValue, !any.contains(where: { violations(of: value, against: $0).isEmpty }) {
            problems.append("\(path): matches none of anyOf: \(value.serialized())")
        }
        if let one = schema["oneOf"]?.arrayValue {
            let matching = one.filter { violations(of: value, against: $0, at: path).isEmpty }.count
            if matching != 1 {
                let details = one.enumerated().map { index, part in
                    "[\(index)] " + violations(of: value, against: part, at: path).joined(separator: "; ")
                }
                problems.append(
                    "\(path): matches \(matching) of oneOf (exactly 1 wanted): \(value.serialized()) — "
                        + details.joined(separator: " | "))
            }
        }
        if let allowed = schema["enum"]?.arrayValue, !allowed.contains(value) {
            problems.append("\(path): \(value.serialized()) is not one of \(JSON.array(allowed).serialized())")
        }
        if let type = schema["type"]?.stringValue {
            problems += typeViolations(of: value, type: type, schema: schema, at: path)
        }
        return problems
    }

    private func typeViolations(of value: JSON, type: String, schema: JSON, at path: String) -> [String] {
        switch (type, value) {
        case ("object", .object(let object)):
            return objectViolations(object, schema: schema, at: path)
        case ("array", .array(let items)):
            var problems: [String] = []
            if let min = schema["minItems"]?.intValue, items.count < min {
                problems.append("\(path): \(items.count) items, at least \(min) wanted")
            }
            if let max = schema["maxItems"]?.intValue, items.count > max {
                problems.append("\(path): \(items.count) items, at most \(max) allowed")
            }
            if let itemSchema = schema["items"] {
                for (index, item) in items.enumerated() {
                    problems += violations(of: item, against: itemSchema, at: "\(path)[\(index)]")
                }
            }
            return problems
        case ("string", .string(let text)):
            var problems: [String] = []
            if let max = schema["maxLength"]?.intValue, text.count > max {
                problems.append("\(path): \"\(text)\" is longer than \(max)")
            }
            if let min = schema["minLength"]?.intValue, text.count < min {
                problems.append("\(path): \"\(text)\" is shorter than \(min)")
            }
            if let pattern = schema["pattern"]?.stringValue,
                text.range(of: pattern, options: .regularExpression) == nil
            {
                problems.append("\(path): \"\(text)\" does not match \(pattern)")
            }
            return problems
        case ("integer", .int(let number)):
            return rangeViolations(Double(number), schema: schema, at: path)
        case ("number", .int(let number)):
            return rangeViolations(Double(number), schema: schema, at: path)
        case ("number", .double(let number)):
            return rangeViolations(number, schema: schema, at: path)
        case ("boolean", .bool):
            return []
        default:
            return ["\(path): expected \(type), got \(value.serialized())"]
        }
    }

    private func objectViolations(_ object: [String: JSON], schema: JSON, at path: String) -> [String] {
        var problems: [String] = []
        for key in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where object[key] == nil {
            problems.append("\(path): required property \"\(key)\" is missing")
        }
        let properties = schema["properties"]?.objectValue ?? [:]
        if let min = schema["minProperties"]?.intValue, object.count < min {
            problems.append("\(path): \(object.count) properties, at least \(min) wanted")
        }
        for (key, item) in object.sorted(by: { $0.key < $1.key }) {
            if let propertySchema = properties[key] {
                problems += violations(of: item, against: propertySchema, at: "\(path).\(key)")
                continue
            }
            switch schema["additionalProperties"] {
            case .bool(true)?:
                continue
            case .object(let extra)? where !extra.isEmpty:
                problems += violations(of: item, against: .object(extra), at: "\(path).\(key)")
            case .object?:
                continue
            case nil where properties.isEmpty:
                continue
            default:
                problems.append("\(path): property \"\(key)\" is not in the schema")
            }
        }
        return problems
    }

    private func rangeViolations(_ number: Double, schema: JSON, at path: String) -> [String] {
        var problems: [String] = []
        if let min = schema["minimum"].flatMap(Self.number), number < min {
            problems.append("\(path): \(number) is below the minimum \(min)")
        }
        if let max = schema["maximum"].flatMap(Self.number), number > max {
            problems.append("\(path): \(number) is above the maximum \(max)")
        }
        return problems
    }

    private static func number(_ value: JSON) -> Double? {
        value.intValue.map(Double.init) ?? value.doubleValue
    }
}
