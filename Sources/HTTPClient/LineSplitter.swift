/// Splits a byte stream into lines; bytes of a line split across reads are kept until its newline comes.
public struct LineSplitter {
    public init() {}

    private var pending: [UInt8] = []

    public mutating func feed(_ bytes: [UInt8]) -> [String] {
        pending.append(contentsOf: bytes)
        var lines: [String] = []
        var start = pending.startIndex
        // Scan once and drop the consumed prefix once, so a chunk with many lines costs linear time.
        while let lf = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
            var line = pending[start..<lf]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            lines.append(String(decoding: line, as: UTF8.self))
            start = lf + 1
        }
        pending.removeFirst(start - pending.startIndex)
        return lines
    }

    /// What is left after the last newline, if anything.
    public mutating func remainder() -> String? {
        defer { pending.removeAll() }
        return pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self)
    }
}
