import DatapathCore

/// Typed reads of request and config fields that fail with a message naming the field.
extension JSON {
    func requireString(_ field: String) throws -> String {
        guard let value = stringValue else { throw AgentError.invalidField(field, "expected a string, got \(typeName)") }
        return value
    }

    func requireInt(_ field: String, in range: ClosedRange<Int>) throws -> Int {
        guard let value = intValue else { throw AgentError.invalidField(field, "expected an integer, got \(typeName)") }
        guard let int = Int(exactly: value), range.contains(int) else {
            throw AgentError.invalidField(field, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return int
    }

    func requireArray(_ field: String) throws -> [JSON] {
        guard let value = arrayValue else { throw AgentError.invalidField(field, "expected an array, got \(typeName)") }
        return value
    }

    func requireObject(_ field: String) throws -> [String: JSON] {
        guard let value = objectValue else { throw AgentError.invalidField(field, "expected an object, got \(typeName)") }
        return value
    }

    func requireEnum<E: RawRepresentable & CaseIterable>(_ field: String, _ type: E.Type) throws -> E
    where E.RawValue == String {
        let raw = try requireString(field)
        guard let value = E(rawValue: raw) else {
            let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
            throw AgentError.invalidField(field, "\"\(raw)\" is not one of \(allowed)")
        }
        return value
    }
}
