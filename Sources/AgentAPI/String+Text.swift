/// The few text operations the daemon needs beyond the standard library, so that it links FoundationEssentials
/// alone (Foundation would bring ICU, which nothing here uses).
extension StringProtocol {
    /// Without leading and trailing spaces, tabs, carriage returns and newlines.
    public var trimmedWhitespace: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }

    /// Padded with spaces on the right to `width` characters (never cut).
    public func padded(to width: Int) -> String {
        String(self) + String(repeating: " ", count: Swift.max(0, width - count))
    }
}

extension BinaryInteger {
    /// In decimal, with leading zeros up to `width` digits (`7` → `007` for 3; never cut).
    public func zeroPadded(to width: Int) -> String {
        let digits = String(self)
        return String(repeating: "0", count: Swift.max(0, width - digits.count)) + digits
    }
}

/// Path operations on plain strings, as `dirname` does them.
public enum FilePath {
    /// The directory holding `path`: `/a/b` → `/a`, `/a` → `/`, `a` → `` (trailing slashes ignored).
    public static func parent(of path: String) -> String {
        var path = Substring(path)
        while path.count > 1 && path.hasSuffix("/") { path = path.dropLast() }
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
