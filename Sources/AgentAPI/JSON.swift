/// A JSON value as the agent's API reads and writes it.
///
/// Integers stay integers (`Int64`) so identities, ports and counters never pass through a floating-point
/// representation; numbers with a fraction or exponent are `double`.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])
}

extension JSON: CustomStringConvertible {
    /// The compact serialization, keys sorted.
    public var description: String { serialized() }
}
