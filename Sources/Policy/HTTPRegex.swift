/// The regexes of HTTP rules (`method`, `path`, `host`), compiled to the automata the kernel walks.
///
/// The syntax is RE2's (what Envoy and Cilium take), cut to what a DFA over bytes decides exactly: literals and
/// escapes, `.`, classes (`[a-z0-9_-]`, negated, `\d \w \s` and their negations), alternation, groups (`( )`,
/// `(?: )`, `(?P<name> )`), `* + ?` and bounded repetition `{n}`, `{n,}`, `{n,m}` (at most `maxRepeat`), and `^`/`$`
/// at the ends only. A match is always of the whole value, as in Cilium, so the anchors change nothing. Everything
/// else is refused by name rather than approximated: a regex that meant something else would allow more than its
/// author wrote. `.` and negated classes work on bytes (`.` is any byte but `\n`); HTTP request lines and Host
/// values are ASCII, so bytes and characters agree where it matters.
public enum HTTPRegex {
    /// Most repetitions `{n,m}` may ask for: each one is a copy of its operand in the automaton.
    public static let maxRepeat = 255
    /// Most states one regex's automaton may have (`NA_L7_DFA_MAX_STATES` is shared by every regex of a node).
    public static let stateBudget = 4096
    /// Most states the expanded NFA may have, so repetitions of repetitions fail fast instead of filling memory.
    static let nfaBudget = 100_000

    /// The minimal automaton accepting exactly the values `pattern` matches as a whole.
    public static func compile(_ pattern: String, stateBudget: Int = stateBudget) throws(HTTPRegexError) -> ByteDFA {
        var parser = HTTPRegexParser(pattern)
        let tree = try parser.parse()
        let nfa = try HTTPRegexNFA(tree)
        return try nfa.minimalDFA(stateBudget: stateBudget)
    }
}

/// Why a regex was refused: the construct, and where it is in the pattern.
public struct HTTPRegexError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// A set of byte values: a transition label.
struct ByteSet: Hashable, Sendable {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    static let all = ByteSet(0...255)

    init() {}

    init(_ range: ClosedRange<UInt8>) { insert(range) }

    init(_ bytes: UInt8...) {
        for byte in bytes { insert(byte) }
    }

    mutating func insert(_ byte: UInt8) {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: words.0 |= bit
        case 1: words.1 |= bit
        case 2: words.2 |= bit
        default: words.3 |= bit
        }
    }

    mutating func insert(_ range: ClosedRange<UInt8>) {
        for byte in range { insert(byte) }
    }

    mutating func formUnion(_ other: ByteSet) {
        words = (words.0 | other.words.0, words.1 | other.words.1, words.2 | other.words.2, words.3 | other.words.3)
    }

    func contains(_ byte: UInt8) -> Bool {
        let word: UInt64
        switch byte >> 6 {
        case 0: word = words.0
        case 1: word = words.1
        case 2: word = words.2
        default: word = words.3
        }
        return word & (UInt64(1) << UInt64(byte & 63)) != 0
    }

    var inverted: ByteSet {
        var out = ByteSet()
        out.words = (~words.0, ~words.1, ~words.2, ~words.3)
        return out
    }

    static func == (a: ByteSet, b: ByteSet) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}

/// A parsed regex.
indirect enum HTTPRegexNode: Equatable {
    /// Matches the empty string.
    case empty
    /// One byte of the set.
    case bytes(ByteSet)
    case concat([HTTPRegexNode])
    case alternate([HTTPRegexNode])
    /// `min` to `max` (nil: unbounded) repetitions.
    case repetition(HTTPRegexNode, min: Int, max: Int?)
}
