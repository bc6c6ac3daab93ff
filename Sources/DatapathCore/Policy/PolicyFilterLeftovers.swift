import CNodeABI

/// What withdrawn full-length keys may have left set in the policy table's filters with no key behind it: the
/// `na_ptable_ports` words holding their port bits and the `na_ptable_peers` lines holding their pairs' bits. Bits
/// are set before a key is written and a withdrawal leaves them, so a port or a peer whose keys came and went keeps
/// costing its new flows a table read until `PolicyTable.refreshFilters` clears them.
///
/// Fixed-size: a bit per port word and per peer line, and the words a refresh computes in, all allocated once, so
/// that noting a withdrawal and refreshing allocate nothing on the paths of policy changes.
public struct PolicyFilterLeftovers: Sendable {
    /// A bit per `na_ptable_ports` word.
    private(set) var portWords = [UInt64](repeating: 0, count: Int(NA_POLICY_PORTS_WORDS) / 64)
    /// A bit per `na_ptable_peers` line of 8 words (as `na_policy_peer_line` numbers them).
    private(set) var peerLines = [UInt64](repeating: 0, count: Int(NA_POLICY_PEERS_WORDS) / 8 / 64)
    /// The words a refresh computes: every port word, or `PolicyTable.refreshLines` peer lines at a time.
    private var scratch = [UInt64](repeating: 0, count: Int(NA_POLICY_PORTS_WORDS))
    public private(set) var isEmpty = true

    public init() {}

    /// Notes the bits of keys just withdrawn.
    public mutating func add(withdrawn keys: some Sequence<na_policy_key>) {
        for key in keys {
            let port = PolicyTable.portBit(key)
            Self.set(port / 64, in: &portWords)
            Self.set(na_policy_peer_line(port), in: &peerLines)
            isEmpty = false
        }
    }

    /// How many peer lines are noted.
    public var peerLineCount: Int { peerLines.reduce(0) { $0 + $1.nonzeroBitCount } }

    /// Whether port word `word` is noted.
    func portWordNoted(_ word: UInt32) -> Bool { Self.isSet(word, in: portWords) }

    /// Whether peer line `line` is noted.
    func peerLineNoted(_ line: UInt32) -> Bool { Self.isSet(line, in: peerLines) }

    /// Forgets everything noted, in place.
    mutating func removeAll() {
        Self.zero(&portWords)
        Self.zero(&peerLines)
        isEmpty = true
    }

    /// Zeroes the refresh's words before a pass computes in them (a pass that threw left its own there).
    mutating func clearScratch() { Self.zero(&scratch) }

    /// Sets `bit` in the refresh's words, whose first is word `first` of the map being refreshed.
    mutating func markScratch(_ bit: UInt32, fromWord first: UInt32 = 0) { Self.set(bit - first * 64, in: &scratch) }

    /// The refresh's value for word `word` of the map, its words starting at `first`.
    func scratchWord(_ word: UInt32, fromWord first: UInt32 = 0) -> UInt64 { scratch[Int(word - first)] }

    private static func zero(_ words: inout [UInt64]) {
        for index in words.indices { words[index] = 0 }
    }

    private static func set(_ bit: UInt32, in words: inout [UInt64]) {
        words[Int(bit / 64)] |= 1 << UInt64(bit % 64)
    }

    private static func isSet(_ bit: UInt32, in words: [UInt64]) -> Bool {
        words[Int(bit / 64)] & (1 << UInt64(bit % 64)) != 0
    }
}
