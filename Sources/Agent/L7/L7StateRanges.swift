/// Which elements of `na_l7_dfa` are in use: each ruleset's states are one contiguous range, so a ruleset names
/// its range by base and count (`na_l7_port_value.dfa_base`/`dfa_count`) and a restarted agent recovers this from
/// the ports map. Element 0 is the dead state every DFA shares and is never handed out.
struct L7StateRanges {
    let capacity: Int
    /// Ranges in use, by base.
    private(set) var used: [Int: Int] = [:]

    init(capacity: Int) { self.capacity = capacity }

    /// The lowest base with `count` free elements after it (first fit), marked used; nil when none is left.
    mutating func allocate(_ count: Int) -> Int? {
        guard count > 0 else { return 0 }
        var candidate = 1
        for (base, length) in used.sorted(by: { $0.key < $1.key }) {
            if base - candidate >= count { break }
            candidate = max(candidate, base + length)
        }
        guard candidate + count <= capacity else { return nil }
        used[candidate] = count
        return candidate
    }

    /// Marks a range as used (what the maps already hold).
    mutating func claim(base: Int, count: Int) {
        guard count > 0 else { return }
        used[base] = count
    }

    mutating func free(base: Int) { used[base] = nil }

    var free: Int { capacity - 1 - used.values.reduce(0, +) }
}
