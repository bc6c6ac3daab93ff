/// An array map of 64-bit words that programs read as bits: bit `n` is bit `n % 64` of word `n / 64`
/// (`na_lb_ports`, `na_ptable_ports`, `na_ptable_peers`, `na_ptable_ovf`).
///
/// A map may end with a complete word after its bit words: the programs trust a clear bit only while that word is
/// nonzero, and take every bit as set until then (a map being rebuilt).
///
/// Every write is a read-modify-write of whole words, writing only the words that change. Callers that write one map
/// from more than one thread serialize those writes: a bit lost to a concurrent write would hide it from the
/// programs.
public struct BitWords {
    public let map: TypedMap<UInt32, UInt64>
    /// How many words hold bits.
    public let words: UInt32
    /// The word after them that says the bits are complete; nil for a map without one.
    public let completeWord: UInt32?

    /// `words` bit words; nil: every word of the map, and no complete word.
    public init(_ map: BPFMap, words: UInt32? = nil) throws {
        self.map = try TypedMap(map)
        let size = UInt32(map.info.maxEntries)
        self.words = words ?? size
        self.completeWord = self.words < size ? self.words : nil
    }

    /// Sets `bits`.
    public func set(_ bits: [UInt32]) throws { try change(bits) { $0 | $1 } }

    /// Clears `bits`.
    public func clear(_ bits: [UInt32]) throws { try change(bits) { $0 & ~$1 } }

    /// Rewrites the bit words to hold exactly `bits`, then marks the map complete. A word read meanwhile holds its
    /// old bits or its new ones: what a program needs of it in both, it finds.
    public func rewrite(exactly bits: [UInt32]) throws {
        var wanted: [UInt32: UInt64] = [:]
        for bit in bits { Self.insert(bit, into: &wanted) }
        try rewrite(words: wanted)
    }

    /// Sets `bit` in `words` (word index to its bits).
    public static func insert(_ bit: UInt32, into words: inout [UInt32: UInt64]) {
        words[bit / 64, default: 0] |= 1 << UInt64(bit % 64)
    }

    /// `rewrite(exactly:)` of the bits of `wanted` (word index to its bits; a word it lacks is clear), reading the
    /// map an entry at a time.
    public func rewrite(words wanted: [UInt32: UInt64]) throws {
        try map.forEachEntry { word, value in
            if word < words, value != wanted[word] ?? 0 { try map.update(word, wanted[word] ?? 0) }
        }
        try setComplete(true)
    }

    /// Sets bit word `word` to `bits` if it holds others; true when it wrote.
    public func replace(_ word: UInt32, _ bits: UInt64) throws -> Bool {
        guard word < words, try map.lookup(word) ?? 0 != bits else { return false }
        try map.update(word, bits)
        return true
    }

    /// Whether the map is complete (always, without a complete word).
    public func isComplete() throws -> Bool {
        guard let completeWord else { return true }
        return try map.lookup(completeWord) ?? 0 != 0
    }

    /// Marks the map complete or not (no effect on a map without a complete word).
    public func setComplete(_ complete: Bool) throws {
        guard let completeWord else { return }
        try map.update(completeWord, complete ? 1 : 0)
    }

    /// The set bits of the bit words, ascending, and whether the map is complete (always, without a complete word).
    public func read() throws -> (bits: [UInt32], complete: Bool) {
        let all = try map.entries()
        let complete = completeWord.map { word in all.contains { $0.key == word && $0.value != 0 } } ?? true
        return (Self.bits(all.filter { $0.key < words }), complete)
    }

    /// The set bits of `words`, as `word * 64 + bit`, ascending.
    public static func bits(_ words: [(key: UInt32, value: UInt64)]) -> [UInt32] {
        words.flatMap { word, bits in
            (0..<UInt32(64)).filter { bits & (1 << UInt64($0)) != 0 }.map { word * 64 + $0 }
        }.sorted()
    }

    private func change(_ bits: [UInt32], _ combine: (UInt64, UInt64) -> UInt64) throws {
        var masks: [UInt32: UInt64] = [:]
        for bit in bits { masks[bit / 64, default: 0] |= 1 << UInt64(bit % 64) }
        for (word, mask) in masks {
            let old = try map.lookup(word) ?? 0
            let new = combine(old, mask)
            if new != old { try map.update(word, new) }
        }
    }
}
