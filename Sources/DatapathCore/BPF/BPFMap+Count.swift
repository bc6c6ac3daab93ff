import CLibbpf
import Glibc

extension BPFMap {
    /// Number of entries, counted with BPF_MAP_LOOKUP_BATCH: one syscall per `batchSize` entries and no
    /// per-entry allocation, so a 500k-entry conntrack table costs about a hundred syscalls and no
    /// garbage. Map types without batch lookup (LPM tries) are walked key by key without reading values; arrays
    /// report their size; a program array, the slots that hold a program; ring buffers have no entries.
    public func countEntries(batchSize: Int = 4096) throws -> Int {
        switch info.type {
        case .array, .perCPUArray: return info.maxEntries
        case .progArray: return try keys().filter { try lookup(key: $0) != nil }.count
        case .ringBuffer: return 0
        default: break
        }
        var total = 0
        let supported = try walkBatches(batchSize: batchSize) { _, _, n in
            total += n
            // A map refilled faster than it is read cannot keep the walk going forever.
            return total <= info.maxEntries
        }
        return supported ? min(total, info.maxEntries) : try countKeys()
    }

    private func countKeys() throws -> Int {
        var n = 0
        var cursor: [UInt8]? = nil
        while let key = try nextKey(after: cursor), n <= info.maxEntries {
            n += 1
            cursor = key
        }
        return min(n, info.maxEntries)
    }
}
