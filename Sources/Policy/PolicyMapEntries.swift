/// An endpoint's policy map as the agent holds it: one entry per key, in key order.
///
/// A sorted array rather than a dictionary keyed by `PolicyEntry.Key`: the dictionary's buckets and its copy of
/// every key cost about three times the entries themselves, and the agent keeps one of these per endpoint (what
/// the map holds) besides the one each regeneration computes. Lookups are binary searches; the changes between two
/// maps are one walk over both.
public struct PolicyMapEntries: RandomAccessCollection, Equatable, Sendable, ExpressibleByArrayLiteral {
    /// Ascending by key, no key twice.
    private var entries: [PolicyEntry]

    /// Entries by key; a later entry with the same key replaces an earlier one.
    public init(_ entries: some Sequence<PolicyEntry>) {
        var sorted = Array(entries)
        // Stable, so that among equal keys the later entry stays last and wins below.
        if !sorted.isSorted(by: { $0.key < $1.key }) {
            sorted = sorted.enumerated().sorted { ($0.element.key, $0.offset) < ($1.element.key, $1.offset) }
                .map(\.element)
        }
        var unique: [PolicyEntry] = []
        unique.reserveCapacity(sorted.count)
        for entry in sorted {
            if let last = unique.last, last.key == entry.key {
                unique[unique.count - 1] = entry
            } else {
                unique.append(entry)
            }
        }
        self.entries = unique
    }

    public init(arrayLiteral elements: PolicyEntry...) { self.init(elements) }

    public var startIndex: Int { entries.startIndex }
    public var endIndex: Int { entries.endIndex }
    public subscript(position: Int) -> PolicyEntry { entries[position] }

    /// The entry of `key`, if the map holds one.
    public subscript(key: PolicyEntry.Key) -> PolicyEntry? {
        let position = firstPosition(notBelow: key)
        return position < entries.count && entries[position].key == key ? entries[position] : nil
    }

    /// The entries of the peers `identities`, as a map of their own. Keys are ordered by direction, then identity,
    /// so each identity's entries are two runs found by binary search: the cost follows the identities asked for,
    /// not the size of the map.
    public func entries(of identities: Set<UInt32>) -> PolicyMapEntries {
        var found: [PolicyEntry] = []
        let ordered = identities.sorted()
        for direction in Direction.allCases.sorted(by: { $0.rawValue < $1.rawValue }) {
            for identity in ordered {
                var position = firstPosition(
                    notBelow: PolicyEntry.Key(identity: identity, direction: direction, proto: 0, port: 0, bits: 0))
                while position < entries.count, entries[position].identity == identity,
                    entries[position].direction == direction
                {
                    found.append(entries[position])
                    position += 1
                }
            }
        }
        return PolicyMapEntries(ordered: found)
    }

    /// Entries already ascending by key, no key twice.
    private init(ordered: [PolicyEntry]) { self.entries = ordered }

    /// The map after `upsert` was written and `remove` removed (a key in both ends removed), changed in place.
    public mutating func apply(upsert: [PolicyEntry], remove: [PolicyEntry.Key]) {
        guard !upsert.isEmpty || !remove.isEmpty else { return }
        let writes = PolicyMapEntries(upsert).entries
        let removed = remove.isSorted(by: <) ? remove : remove.sorted()
        var result: [PolicyEntry] = []
        result.reserveCapacity(entries.count + writes.count)
        var write = 0
        var removal = 0
        // Keys reach `keep` in ascending order, so one position in `removed` serves them all.
        func keep(_ entry: PolicyEntry) {
            while removal < removed.count && removed[removal] < entry.key { removal += 1 }
            if removal < removed.count && removed[removal] == entry.key { return }
            result.append(entry)
        }
        for entry in entries {
            while write < writes.count && writes[write].key < entry.key {
                keep(writes[write])
                write += 1
            }
            if write < writes.count && writes[write].key == entry.key {
                keep(writes[write])
                write += 1
            } else {
                keep(entry)
            }
        }
        while write < writes.count {
            keep(writes[write])
            write += 1
        }
        entries = result
    }

    /// Changes that turn the map holding `old` into one holding `new`: entries to write (new keys, or keys whose
    /// verdict or rule changed) and keys to delete, each in key order. Apply the writes first: traffic of a
    /// removed key then meets the new entries at once, never a moment with neither.
    public static func diff(from old: PolicyMapEntries, to new: PolicyMapEntries) -> (
        upsert: [PolicyEntry], remove: [PolicyEntry.Key]
    ) {
        var upsert: [PolicyEntry] = []
        var remove: [PolicyEntry.Key] = []
        var oldPosition = 0
        for entry in new.entries {
            while oldPosition < old.entries.count && old.entries[oldPosition].key < entry.key {
                remove.append(old.entries[oldPosition].key)
                oldPosition += 1
            }
            if oldPosition < old.entries.count && old.entries[oldPosition].key == entry.key {
                if old.entries[oldPosition] != entry { upsert.append(entry) }
                oldPosition += 1
            } else {
                upsert.append(entry)
            }
        }
        remove += old.entries[oldPosition...].map(\.key)
        return (upsert, remove)
    }

    private func firstPosition(notBelow key: PolicyEntry.Key) -> Int {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].key < key { low = middle + 1 } else { high = middle }
        }
        return low
    }
}

extension Sequence {
    /// True when no element is ordered before the one ahead of it.
    fileprivate func isSorted(by areInIncreasingOrder: (Element, Element) -> Bool) -> Bool {
        var previous: Element?
        for element in self {
            if let previous, areInIncreasingOrder(element, previous) { return false }
            previous = element
        }
        return true
    }
}
