/// A plain-text table with aligned columns, as `kubectl get` and `cilium-dbg` print them: an upper-case header
/// row, columns separated by at least three spaces, no borders, no trailing spaces.
public struct Table: Sendable, Equatable {
    public var columns: [String]
    public var rows: [[String]]

    public init(columns: [String], rows: [[String]] = []) {
        self.columns = columns
        self.rows = rows
    }

    public mutating func append(_ row: [String]) {
        rows.append(row)
    }

    /// The table as text, one line per row, each ending in "\n". Rows shorter than the header are padded with
    /// empty cells; line breaks inside a cell become spaces so every row stays on one line.
    public func render(gap: Int = 3) -> String {
        let header = columns.map { $0.uppercased() }
        let body = rows.map { row in
            (0..<columns.count).map { i in
                i < row.count ? Self.singleLine(row[i]) : ""
            }
        }
        var widths = header.map(\.count)
        for row in body {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        var out = ""
        for row in [header] + body {
            var line = ""
            for (i, cell) in row.enumerated() {
                line += cell
                if i < row.count - 1 {
                    line += String(repeating: " ", count: widths[i] - cell.count + gap)
                }
            }
            while line.last == " " { line.removeLast() }
            out += line + "\n"
        }
        return out
    }

    private static func singleLine(_ text: String) -> String {
        guard text.contains(where: \.isNewline) else { return text }
        return String(text.map { $0.isNewline ? " " : $0 })
    }
}
