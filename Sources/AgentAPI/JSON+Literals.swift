extension JSON: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSON: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self = .int(value) }
}

extension JSON: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension JSON: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSON: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
}

extension JSON: ExpressibleByDictionaryLiteral {
    /// A later duplicate key wins, as in a Swift dictionary built by assignment.
    public init(dictionaryLiteral elements: (String, JSON)...) {
        var object: [String: JSON] = [:]
        for (key, value) in elements { object[key] = value }
        self = .object(object)
    }
}

extension JSON: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension JSON {
    /// Wraps a Swift integer of any width. Values beyond `Int64` (only possible for `UInt64`) are clamped.
    public init<T: BinaryInteger>(_ value: T) {
        self = .int(Int64(clamping: value))
    }

    /// An optional string: `null` when absent.
    public init(_ value: String?) {
        self = value.map(JSON.string) ?? .null
    }

    /// An array of strings.
    public init(_ values: [String]) {
        self = .array(values.map(JSON.string))
    }

    /// An object built from pairs, dropping pairs whose value is nil, so optional fields are simply left out.
    public static func object(dropNils pairs: [(String, JSON?)]) -> JSON {
        var object: [String: JSON] = [:]
        for (key, value) in pairs {
            if let value { object[key] = value }
        }
        return .object(object)
    }
}
