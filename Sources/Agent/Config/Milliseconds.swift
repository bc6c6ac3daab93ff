import DatapathCore

/// A duration option in whole milliseconds (read and shown by `ConfigDuration`: "1s", "250ms", "1m30s", or whole
/// seconds).
struct Milliseconds: Sendable, Equatable, CustomStringConvertible {
    var value: Int

    init(_ value: Int) { self.value = value }

    init(_ json: JSON, field: String, max: Int) throws {
        value = Int(try ConfigDuration.milliseconds(json, field: field, range: 0...Int64(max)))
    }

    var description: String { ConfigDuration.text(milliseconds: Int64(value)) }
    var json: JSON { .string(description) }
}
