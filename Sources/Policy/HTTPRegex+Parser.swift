/// Reads the RE2 subset `HTTPRegex` accepts into a tree, refusing every other construct by name.
struct HTTPRegexParser {
    private let pattern: [UInt8]
    private var index = 0
    private var depth = 0

    init(_ pattern: String) { self.pattern = Array(pattern.utf8) }

    mutating func parse() throws(HTTPRegexError) -> HTTPRegexNode {
        let tree = try alternation()
        if index < pattern.count { throw fail("unmatched ) at offset \(index)") }
        return tree
    }

    private var peek: UInt8? { index < pattern.count ? pattern[index] : nil }

    private func byte(at offset: Int) -> UInt8? { offset < pattern.count ? pattern[offset] : nil }

    private func fail(_ message: String) -> HTTPRegexError { HTTPRegexError(message) }

    /// The pattern's text from `start` to the current position, for messages.
    private func text(from start: Int, to end: Int? = nil) -> String {
        String(decoding: pattern[start..<min(end ?? index, pattern.count)], as: UTF8.self)
    }

    private mutating func alternation() throws(HTTPRegexError) -> HTTPRegexNode {
        var branches = [try concatenation()]
        while peek == UInt8(ascii: "|") {
            index += 1
            branches.append(try concatenation())
        }
        return branches.count == 1 ? branches[0] : .alternate(branches)
    }

    /// A branch: atoms with their quantifiers up to `|`, `)` or the end. `^` may open and `$` close a branch of the
    /// top level; anywhere else they would mean a match that is not whole, which the kernel does not do.
    private mutating func concatenation() throws(HTTPRegexError) -> HTTPRegexNode {
        var items: [HTTPRegexNode] = []
        if depth == 0 && peek == UInt8(ascii: "^") { index += 1 }
        while let c = peek, c != UInt8(ascii: "|"), c != UInt8(ascii: ")") {
            if c == UInt8(ascii: "$") {
                let next = byte(at: index + 1)
                if depth == 0 && (next == nil || next == UInt8(ascii: "|")) {
                    index += 1
                    continue
                }
                throw fail("anchor $ at offset \(index) is only allowed at the end (matches are always whole)")
            }
            if c == UInt8(ascii: "^") {
                throw fail("anchor ^ at offset \(index) is only allowed at the start (matches are always whole)")
            }
            items.append(try quantified(try atom()))
        }
        switch items.count {
        case 0: return .empty
        case 1: return items[0]
        default: return .concat(items)
        }
    }

    private mutating func atom() throws(HTTPRegexError) -> HTTPRegexNode {
        let start = index
        let c = pattern[index]
        switch c {
        case UInt8(ascii: "("):
            return try group()
        case UInt8(ascii: "["):
            index += 1
            return .bytes(try characterClass(start: start))
        case UInt8(ascii: "."):
            index += 1
            return .bytes(ByteSet(UInt8(ascii: "\n")).inverted)
        case UInt8(ascii: "\\"):
            index += 1
            switch try escape(inClass: false, start: start) {
            case .byte(let b): return .bytes(ByteSet(b))
            case .set(let set): return .bytes(set)
            }
        case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"):
            throw fail("repetition \(text(from: start, to: start + 1)) at offset \(start) has nothing to repeat")
        case UInt8(ascii: "{") where repetitionBounds(at: index) != nil:
            throw fail("repetition {..} at offset \(start) has nothing to repeat")
        case 0x80...:
            // A character outside ASCII: its UTF-8 bytes in sequence, so a quantifier repeats all of them.
            var length = 1
            while let next = byte(at: index + length), next & 0xC0 == 0x80 { length += 1 }
            let bytes = pattern[index..<index + length].map { HTTPRegexNode.bytes(ByteSet($0)) }
            index += length
            return bytes.count == 1 ? bytes[0] : .concat(bytes)
        default:
            index += 1
            return .bytes(ByteSet(c))
        }
    }

    /// `( )`, `(?: )`, `(?P<name> )`, `(?<name> )`; lookaround and flags are refused.
    private mutating func group() throws(HTTPRegexError) -> HTTPRegexNode {
        let start = index
        index += 1
        if peek == UInt8(ascii: "?") {
            let rest = text(from: index, to: index + 4)
            if rest.hasPrefix("?:") {
                index += 2
            } else if rest.hasPrefix("?P<")
                || (rest.hasPrefix("?<") && !rest.hasPrefix("?<=") && !rest.hasPrefix("?<!"))
            {
                guard let close = pattern[index...].firstIndex(of: UInt8(ascii: ">")) else {
                    throw fail("named group at offset \(start) has no closing >")
                }
                index = close + 1
            } else if rest.hasPrefix("?P=") {
                throw fail("backreference (?P=...) at offset \(start) is not supported")
            } else if rest.hasPrefix("?=") || rest.hasPrefix("?!") {
                throw fail("lookahead (\(rest.prefix(2))...) at offset \(start) is not supported")
            } else if rest.hasPrefix("?<=") || rest.hasPrefix("?<!") {
                throw fail("lookbehind (\(rest.prefix(3))...) at offset \(start) is not supported")
            } else {
                let end = pattern[index...].firstIndex { $0 == UInt8(ascii: ")") || $0 == UInt8(ascii: ":") } ?? index
                throw fail("flags (\(text(from: index, to: end))) at offset \(start) are not supported")
            }
        }
        depth += 1
        let inner = try alternation()
        depth -= 1
        guard peek == UInt8(ascii: ")") else { throw fail("missing ) for the group at offset \(start)") }
        index += 1
        return inner
    }

    private enum ClassItem {
        case byte(UInt8)
        case set(ByteSet)
    }

    /// After `[`: items up to the closing `]` (a `]` first is literal, as a `-` first or last is).
    private mutating func characterClass(start: Int) throws(HTTPRegexError) -> ByteSet {
        var negated = false
        if peek == UInt8(ascii: "^") {
            negated = true
            index += 1
        }
        var set = ByteSet()
        var first = true
        while true {
            guard let c = peek else { throw fail("missing ] for the class at offset \(start)") }
            if c == UInt8(ascii: "]") && !first {
                index += 1
                break
            }
            first = false
            if c == UInt8(ascii: "[") && byte(at: index + 1) == UInt8(ascii: ":") {
                throw fail("POSIX class [:...:] at offset \(index) is not supported; use a range such as [a-z]")
            }
            let itemStart = index
            let low = try classItem()
            if case .byte(let lowByte) = low, peek == UInt8(ascii: "-"),
                let next = byte(at: index + 1), next != UInt8(ascii: "]")
            {
                index += 1
                guard case .byte(let highByte) = try classItem() else {
                    throw fail("invalid range \(text(from: itemStart)) at offset \(itemStart) in a class")
                }
                guard lowByte <= highByte else {
                    throw fail(
                        "invalid range \(text(from: itemStart)) at offset \(itemStart): its end is before its start")
                }
                set.insert(lowByte...highByte)
                continue
            }
            switch low {
            case .byte(let b): set.insert(b)
            case .set(let s): set.formUnion(s)
            }
        }
        return negated ? set.inverted : set
    }

    private mutating func classItem() throws(HTTPRegexError) -> ClassItem {
        let start = index
        let c = pattern[index]
        index += 1
        if c == UInt8(ascii: "\\") { return try escape(inClass: true, start: start) }
        if c >= 0x80 {
            throw fail("non-ASCII character at offset \(start) in a class is not supported (classes match bytes)")
        }
        return .byte(c)
    }

    /// After `\`.
    private mutating func escape(inClass: Bool, start: Int) throws(HTTPRegexError) -> ClassItem {
        guard let c = peek else { throw fail("trailing \\ at offset \(start)") }
        index += 1
        let scalar = Character(Unicode.Scalar(c))
        switch scalar {
        case "d", "D", "w", "W", "s", "S":
            var set: ByteSet
            switch scalar.lowercased() {
            case "d": set = ByteSet(UInt8(ascii: "0")...UInt8(ascii: "9"))
            case "w":
                set = ByteSet(UInt8(ascii: "0")...UInt8(ascii: "9"))
                set.insert(UInt8(ascii: "a")...UInt8(ascii: "z"))
                set.insert(UInt8(ascii: "A")...UInt8(ascii: "Z"))
                set.insert(UInt8(ascii: "_"))
            default:
                // RE2's \s: no vertical tab.
                set = ByteSet(UInt8(ascii: "\t"), UInt8(ascii: "\n"), 0x0C, UInt8(ascii: "\r"), UInt8(ascii: " "))
            }
            return .set(scalar.isUppercase ? set.inverted : set)
        case "n": return .byte(UInt8(ascii: "\n"))
        case "r": return .byte(UInt8(ascii: "\r"))
        case "t": return .byte(UInt8(ascii: "\t"))
        case "f": return .byte(0x0C)
        case "v": return .byte(0x0B)
        case "a": return .byte(0x07)
        case "x": return .byte(try hexEscape(start: start))
        case "b", "B":
            throw fail("word boundary \\\(scalar) at offset \(start) is not supported")
        case "A", "z", "Z":
            throw fail("anchor \\\(scalar) at offset \(start) is not supported (matches are always whole)")
        case "p", "P":
            throw fail("unicode class \\\(scalar){..} at offset \(start) is not supported")
        case "1"..."9":
            throw fail("backreference \\\(scalar) at offset \(start) is not supported")
        case "0":
            throw fail("octal escape \\0 at offset \(start) is not supported; use \\x")
        case "Q", "E":
            throw fail("quoting \\Q...\\E at offset \(start) is not supported")
        default:
            // Any ASCII punctuation stands for itself, as in RE2.
            guard c < 0x80, !scalar.isLetter, !scalar.isNumber, c > 0x20, c != 0x7F else {
                throw fail("unknown escape \\\(scalar) at offset \(start)")
            }
            return .byte(c)
        }
    }

    /// After `\x`: two hex digits or `{digits}`, at most 7F (higher values are characters of several bytes).
    private mutating func hexEscape(start: Int) throws(HTTPRegexError) -> UInt8 {
        var digits = ""
        if peek == UInt8(ascii: "{") {
            guard let close = pattern[index...].firstIndex(of: UInt8(ascii: "}")) else {
                throw fail("\\x{ at offset \(start) has no closing }")
            }
            digits = text(from: index + 1, to: close)
            index = close + 1
        } else {
            digits = text(from: index, to: index + 2)
            index = min(index + 2, pattern.count)
            if digits.utf8.count != 2 { digits = "" }
        }
        guard !digits.isEmpty, digits.count <= 8, digits.allSatisfy(\.isHexDigit), let value = UInt32(digits, radix: 16)
        else {
            throw fail("invalid hex escape \(text(from: start)) at offset \(start)")
        }
        guard value <= 0x7F else {
            throw fail(
                "hex escape \(text(from: start)) at offset \(start) is not ASCII (only \\x00-\\x7f are supported)")
        }
        return UInt8(value)
    }

    /// `{n}`, `{n,}` or `{n,m}` at `offset`, with its length; nil when the brace is not a repetition (RE2 reads it
    /// as a literal then).
    private func repetitionBounds(at offset: Int) -> (min: Int, max: Int?, length: Int)? {
        guard byte(at: offset) == UInt8(ascii: "{"),
            let close = pattern[offset...].firstIndex(of: UInt8(ascii: "}"))
        else { return nil }
        let inside = text(from: offset + 1, to: close)
        let parts = inside.split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false)
        func number(_ s: Substring) -> Int? {
            guard !s.isEmpty, s.count <= 6, s.allSatisfy(\.isASCIIDigit) else { return nil }
            return Int(s)
        }
        guard let low = number(parts[0]) else { return nil }
        if parts.count == 1 { return (low, low, close - offset + 1) }
        if parts[1].isEmpty { return (low, nil, close - offset + 1) }
        guard let high = number(parts[1]) else { return nil }
        return (low, high, close - offset + 1)
    }

    /// The quantifier after an atom, if any; a second one (`a**`), lazy (`*?`) and possessive (`*+`) ones are
    /// refused, as RE2 refuses the first and the kernel's automaton has no notion of the others.
    private mutating func quantified(_ node: HTTPRegexNode) throws(HTTPRegexError) -> HTTPRegexNode {
        guard let c = peek else { return node }
        let start = index
        let bounds: (min: Int, max: Int?)
        switch c {
        case UInt8(ascii: "*"):
            bounds = (0, nil)
            index += 1
        case UInt8(ascii: "+"):
            bounds = (1, nil)
            index += 1
        case UInt8(ascii: "?"):
            bounds = (0, 1)
            index += 1
        case UInt8(ascii: "{"):
            guard let found = repetitionBounds(at: index) else { return node }
            let written = text(from: index, to: index + found.length)
            if found.min > HTTPRegex.maxRepeat || (found.max ?? 0) > HTTPRegex.maxRepeat {
                throw fail("repetition \(written) at offset \(start) exceeds \(HTTPRegex.maxRepeat)")
            }
            if let high = found.max, high < found.min {
                throw fail("invalid repetition \(written) at offset \(start): its maximum is below its minimum")
            }
            bounds = (found.min, found.max)
            index += found.length
        default:
            return node
        }
        let written = text(from: start)
        if peek == UInt8(ascii: "?") {
            throw fail("lazy quantifier \(written)? at offset \(start) is not supported")
        }
        if peek == UInt8(ascii: "+") {
            throw fail("possessive quantifier \(written)+ at offset \(start) is not supported")
        }
        if let next = peek,
            next == UInt8(ascii: "*") || (next == UInt8(ascii: "{") && repetitionBounds(at: index) != nil)
        {
            throw fail(
                "repeated quantifier \(written)\(text(from: index, to: index + 1)) at offset \(start) is not supported")
        }
        return .repetition(node, min: bounds.min, max: bounds.max)
    }
}
