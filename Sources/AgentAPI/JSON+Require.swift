/// Typed reads of request and config fields that fail with a message naming the field.
extension JSON {
    public func requireString(_ field: String) throws(AgentError) -> String {
        guard let value = stringValue else {
            throw AgentError.invalidField(field, "expected a string, got \(typeName)")
        }
        return value
    }

    public func requireInt(_ field: String, in range: ClosedRange<Int>) throws(AgentError) -> Int {
        guard let value = intValue else { throw AgentError.invalidField(field, "expected an integer, got \(typeName)") }
        guard let int = Int(exactly: value), range.contains(int) else {
            throw AgentError.invalidField(field, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return int
    }

    public func requireArray(_ field: String) throws(AgentError) -> [JSON] {
        guard let value = arrayValue else { throw AgentError.invalidField(field, "expected an array, got \(typeName)") }
        return value
    }

    public func requireObject(_ field: String) throws(AgentError) -> [String: JSON] {
        guard let value = objectValue else {
            throw AgentError.invalidField(field, "expected an object, got \(typeName)")
        }
        return value
    }

    public func requireEnum<E: RawRepresentable & CaseIterable>(_ field: String, _ type: E.Type) throws(AgentError) -> E
    where E.RawValue == String {
        let raw = try requireString(field)
        guard let value = E(rawValue: raw) else {
            let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
            throw AgentError.invalidField(field, "\"\(raw)\" is not one of \(allowed)")
        }
        return value
    }
}
