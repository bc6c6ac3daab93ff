/// Durations in configuration, written as Cilium's Go-style durations are: an integer (seconds), or number-unit
/// pairs with units h, m, s and ms ("90s", "5m", "1h30m", "1500ms"). A trailing number without a unit ("5m30")
/// is refused, as Go's time.ParseDuration refuses it. The one parser every option and plugin uses.
public enum ConfigDuration {
    /// Milliseconds, or nil when `text` is malformed or absurdly large.
    public static func milliseconds(_ text: String) -> Int64? {
        if let plain = Int64(text) { return plain <= maxSeconds && plain >= 0 ? plain * 1000 : nil }
        var total: Int64 = 0
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
            rest = rest.dropFirst(digits.count)
            let unitText = rest.prefix(while: { !($0.isASCII && $0.isNumber) })
            rest = rest.dropFirst(unitText.count)
            guard let number = Int64(digits), number <= maxSeconds * 1000, let unit = units[String(unitText)] else {
                return nil
            }
            total += number * unit
            guard total <= maxSeconds * 1000 else { return nil }
        }
        return total
    }

    /// Whole seconds from an integer or a duration string, within `range`; 400 naming `field` otherwise.
    public static func seconds(_ value: JSON, field: String, range: ClosedRange<Int64>) throws(AgentError) -> Int64 {
        let total: Int64?
        if let number = value.intValue {
            total = number
        } else if let text = value.stringValue, let ms = milliseconds(text), ms % 1000 == 0 {
            total = ms / 1000
        } else {
            total = nil
        }
        guard let total else {
            throw AgentError.invalidField(
                field,
                "expected whole seconds as an integer or a duration like \"90s\", \"5m\", \"1h30m\", "
                    + "got \(value.serialized())")
        }
        guard range.contains(total) else {
            throw AgentError.invalidField(
                field, "must be between \(range.lowerBound) and \(range.upperBound) seconds, got \(total)")
        }
        return total
    }

    /// Milliseconds from an integer (whole seconds) or a duration string, within `range` (milliseconds); 400
    /// naming `field` otherwise.
    public static func milliseconds(_ value: JSON, field: String, range: ClosedRange<Int64>) throws(AgentError)
        -> Int64
    {
        let total: Int64?
        if let number = value.intValue {
            total = (0...maxSeconds).contains(number) ? number * 1000 : nil
        } else if let text = value.stringValue {
            total = milliseconds(text)
        } else {
            total = nil
        }
        guard let total else {
            throw AgentError.invalidField(
                field,
                "expected a duration like \"1s\", \"250ms\", \"1m30s\" or whole seconds, got \(value.serialized())")
        }
        guard range.contains(total) else {
            throw AgentError.invalidField(
                field,
                "must be between \(text(milliseconds: range.lowerBound)) and \(text(milliseconds: range.upperBound)), "
                    + "got \(text(milliseconds: total))")
        }
        return total
    }

    /// How a duration is shown: whole seconds as "90s", anything else as "1500ms".
    public static func text(milliseconds: Int64) -> String {
        milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }

    private static let units: [String: Int64] = ["h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1]
    /// Far beyond any lifetime or interval the agent takes (about 68 years), so sums cannot overflow.
    private static let maxSeconds = Int64(Int32.max)
}
