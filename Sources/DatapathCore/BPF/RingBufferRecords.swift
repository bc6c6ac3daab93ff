/// The records of one read of a BPF ring buffer, in ring order, each the raw bytes the BPF program submitted.
///
/// They sit back to back in one buffer (so not aligned: read them with `loadUnaligned`), and taking a record out of
/// the ring copies its bytes but allocates nothing of its own: a reader that gets tens of thousands of records a
/// second would otherwise allocate and free each.
public struct RingBufferRecords: RandomAccessCollection, Sendable {
    private var bytes: [UInt8] = []
    /// Where each record ends in `bytes`.
    private var ends: [Int] = []

    public init() {}

    public var startIndex: Int { 0 }
    public var endIndex: Int { ends.count }

    public subscript(index: Int) -> ArraySlice<UInt8> {
        bytes[(index == 0 ? 0 : ends[index - 1])..<ends[index]]
    }

    /// Calls `body` with each record's bytes in turn, in place: valid only while `body` runs.
    public func forEachUnsafeRecord(_ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { all in
            var start = 0
            for end in ends {
                try body(UnsafeRawBufferPointer(rebasing: all[start..<end]))
                start = end
            }
        }
    }

    /// Adds a copy of `record` (the ring buffer lends its memory only until its callback returns).
    public mutating func append(_ record: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: record)
        ends.append(bytes.count)
    }

    /// Empties it, keeping its buffer for the next read unless a burst made that larger than `keptCapacity`.
    public mutating func removeAll() {
        let keep = bytes.capacity <= Self.keptCapacity
        bytes.removeAll(keepingCapacity: keep)
        ends.removeAll(keepingCapacity: keep)
    }

    /// Bytes of records a reader keeps room for between reads: a quarter of the agent's 1 MiB event ring, whose
    /// reader is woken once an eighth of it is waiting.
    static let keptCapacity = 256 * 1024
}
