extension APIRequest {
    /// The path parameter `name`; 404 when the route has none of that name (a routing bug, not a client error,
    /// but the client should still get an answer).
    public func pathParameter(_ name: String) throws(AgentError) -> String {
        guard let value = pathParameters[name] else { throw .notFound("no \(name) in path \(path)") }
        return value
    }

    /// The query parameter `name` as an integer within `range`, or nil when absent.
    /// Throws 400 `invalid-field` naming the parameter when it is not an integer or out of range.
    public func queryInt(_ name: String, in range: ClosedRange<Int64> = Int64.min...Int64.max) throws(AgentError)
        -> Int64?
    {
        guard let raw = query[name] else { return nil }
        guard let value = Int64(raw) else { throw .invalidField(name, "expected an integer, got \"\(raw)\"") }
        guard range.contains(value) else {
            throw .invalidField(name, "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
        return value
    }

    /// The query parameter `name` as a boolean (`true`/`false`/`1`/`0`, or present without a value), nil when absent.
    public func queryBool(_ name: String) throws(AgentError) -> Bool? {
        guard let raw = query[name] else { return nil }
        switch raw.lowercased() {
        case "", "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw .invalidField(name, "expected true or false, got \"\(raw)\"")
        }
    }
}
