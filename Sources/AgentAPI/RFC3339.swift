/// Timestamps as the API writes and reads them: RFC 3339, always written in UTC with nanoseconds
/// (`2026-11-28T08:01:02.123456789Z`), held as nanoseconds since the Unix epoch.
///
/// Pure arithmetic on the proleptic Gregorian calendar, so server and CLI agree without a time-zone database.
public enum RFC3339 {
    private static let nanosPerSecond: Int64 = 1_000_000_000

    /// `nanoseconds` since the epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, the fraction cut to `fractionDigits`
    /// (1 to 9).
    public static func format(nanoseconds: Int64, fractionDigits: Int = 9) -> String {
        let (seconds, nanos) = floorDivide(nanoseconds, nanosPerSecond)
        let (days, secondOfDay) = floorDivide(seconds, 86_400)
        let (year, month, day) = civil(fromDays: days)
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):"
            + "\(pad(secondOfDay % 3600 / 60, 2)):\(pad(secondOfDay % 60, 2))."
            + nanos.zeroPadded(to: 9).prefix(max(1, min(fractionDigits, 9)))
            + "Z"
    }

    /// Nanoseconds since the epoch for `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (a lower-case `t`/`z` or a space
    /// between date and time are accepted too); nil for anything else, including impossible dates.
    public static func parse(_ text: String) -> Int64? {
        let chars = Array(text.utf8)
        var index = 0

        func number(_ digits: Int) -> Int64? {
            guard index + digits <= chars.count else { return nil }
            var value: Int64 = 0
            for c in chars[index..<index + digits] {
                guard c >= 48 && c <= 57 else { return nil }
                value = value * 10 + Int64(c - 48)
            }
            index += digits
            return value
        }
        func expect(_ allowed: String) -> Bool {
            guard index < chars.count, allowed.utf8.contains(chars[index]) else { return false }
            index += 1
            return true
        }

        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
            expect("Tt "), let hour = number(2), expect(":"), let minute = number(2), expect(":"),
            let second = number(2)
        else { return nil }
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day), hour < 24,
            minute < 60, second < 61  // 60: a leap second, counted as the next second's first instant
        else { return nil }

        var nanos: Int64 = 0
        if index < chars.count, chars[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < chars.count, chars[index] >= 48, chars[index] <= 57 {
                if digits < 9 { nanos = nanos * 10 + Int64(chars[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 9) { nanos *= 10 }
        }

        var offsetSeconds: Int64 = 0
        guard index < chars.count else { return nil }
        if expect("Zz") {
        } else if chars[index] == UInt8(ascii: "+") || chars[index] == UInt8(ascii: "-") {
            let sign: Int64 = chars[index] == UInt8(ascii: "-") ? -1 : 1
            index += 1
            guard let hours = number(2), expect(":"), let minutes = number(2), hours < 24, minutes < 60 else {
                return nil
            }
            offsetSeconds = sign * (hours * 3600 + minutes * 60)
        } else {
            return nil
        }
        guard index == chars.count else { return nil }

        let seconds =
            days(fromYear: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second
            - offsetSeconds
        let (product, overflow) = seconds.multipliedReportingOverflow(by: nanosPerSecond)
        guard !overflow else { return nil }
        return product + nanos
    }

    // MARK: Calendar arithmetic (days since 1970-01-01, proleptic Gregorian)

    static func days(fromYear year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDivide(y, 400).quotient
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = floorDivide(z, 146_097).quotient
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> (quotient: Int64, remainder: Int64) {
        var q = a / b
        var r = a % b
        if r < 0 {
            q -= 1
            r += b
        }
        return (q, r)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String { value.zeroPadded(to: width) }
}
