import DatapathCore

/// A duration option in whole milliseconds, written as number-unit pairs ("1s", "250ms", "1m30s"; "0" or "0s" is
/// zero) or as an integer number of seconds, and shown in the shortest of those forms ("1s", "1500ms").
struct Milliseconds: Sendable, Equatable, CustomStringConvertible {
    var value: Int

    init(_ value: Int) { self.value = value }

    init(_ json: JSON, field: String, max: Int) throws {
        let parsed: Int?
        switch json {
        case .string(let text): parsed = Self.parse(text)
        default: parsed = json.intValue.flatMap { Int(exactly: $0) }.flatMap { $0 <= max / 1000 ? $0 * 1000 : nil }
        }
        guard let parsed else {
            throw AgentError.invalidField(
                field, "expected a duration like \"1s\", \"250ms\", \"1m\" or whole seconds, got \(json.serialized())")
        }
        guard (0...max).contains(parsed) else {
            throw AgentError.invalidField(field, "must be between 0 and \(Milliseconds(max)), got \(Milliseconds(parsed))")
        }
        value = parsed
    }

    var description: String { value % 1000 == 0 ? "\(value / 1000)s" : "\(value)ms" }
    var json: JSON { .string(description) }

    /// "1m30s" → 90000, "250ms" → 250, "2" → 2000; nil when malformed or absurdly large.
    static func parse(_ text: String) -> Int? {
        if let seconds = Int(text) { return seconds >= 0 && seconds <= Int(Int32.max) ? seconds * 1000 : nil }
        var total = 0
        var rest = Substring(text)
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, digits.count <= 9, let number = Int(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unit: Int
            if rest.hasPrefix("ms") {
                unit = 1
                rest = rest.dropFirst(2)
            } else if let first = rest.first, let scale = ["h": 3_600_000, "m": 60_000, "s": 1000][first] {
                unit = scale
                rest = rest.dropFirst()
            } else {
                return nil
            }
            total += number * unit
        }
        return text.isEmpty ? nil : total
    }
}
