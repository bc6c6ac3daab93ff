import CLibbpf
import Glibc

extension BPFMap {
    /// Number of entries, counted with BPF_MAP_LOOKUP_BATCH: one syscall per `batchSize` entries and, unlike
    /// `count()`, no per-entry allocation, so a 500k-entry conntrack table costs about a hundred syscalls and no
    /// garbage. Map types without batch lookup (LPM tries) are walked key by key without reading values; arrays
    /// report their size; ring buffers have no entries.
    public func countEntries(batchSize: Int = 4096) throws -> Int {
        switch info.type {
        case .array, .perCPUArray: return info.maxEntries
        case .ringBuffer: return 0
        default: break
        }
        let valueStride = valueCount == 1 ? info.valueSize : valueCount * roundUp8(info.valueSize)
        var keys = [UInt8](repeating: 0, count: batchSize * info.keySize)
        var values = [UInt8](repeating: 0, count: batchSize * valueStride)
        var inToken = [UInt8](repeating: 0, count: max(info.keySize, 8) + 8)
        var outToken = inToken
        var first = true
        var total = 0
        while true {
            var returned = UInt32(batchSize)
            let rc = keys.withUnsafeMutableBytes { k in
                values.withUnsafeMutableBytes { v in
                    inToken.withUnsafeMutableBytes { i in
                        outToken.withUnsafeMutableBytes { o in
                            cbpf_map_lookup_batch(
                                fd, first ? nil : i.baseAddress, o.baseAddress, k.baseAddress, v.baseAddress, &returned)
                        }
                    }
                }
            }
            let code = rc < 0 ? (rc == -1 ? errno : -rc) : 0
            if code == EINTR { continue }
            if first && (code == EINVAL || code == kernelENOTSUPP || code == EOPNOTSUPP) { return try countKeys() }
            if code != 0 && code != ENOENT {
                throw AgentError.datapath("batch lookup in map \(name): \(errnoText(code))")
            }
            total += Int(returned)
            // A map refilled faster than it is read cannot keep the walk going forever.
            if code == ENOENT || total > info.maxEntries { return min(total, info.maxEntries) }
            inToken = outToken
            first = false
        }
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
