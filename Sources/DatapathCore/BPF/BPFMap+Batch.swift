import CLibbpf
import Glibc

extension BPFMap {
    /// Walks the map in batches with BPF_MAP_LOOKUP_BATCH (one syscall per batch instead of two per entry),
    /// falling back to key-by-key iteration on map types without batch support (LPM tries, ring buffers).
    /// `body` gets the keys and values of one batch, each `keySize` / value bytes long, and returns false to stop.
    public func forEachBatch(
        batchSize: Int = 4096, _ body: (_ keys: [[UInt8]], _ values: [[UInt8]]) throws -> Bool
    ) throws {
        let supported = try walkBatches(batchSize: batchSize) { keys, values, n in
            let keySize = info.keySize
            let valueStride = values.count / batchSize
            let batchKeys = (0..<n).map { Array(keys[$0 * keySize..<($0 + 1) * keySize]) }
            let batchValues = (0..<n).map { Array(values[$0 * valueStride..<($0 + 1) * valueStride]) }
            return try body(batchKeys, batchValues)
        }
        if !supported { try forEachKeyByKey(batchSize: batchSize, body) }
    }

    /// The BPF_MAP_LOOKUP_BATCH loop itself: `body` sees the batch buffers (keys packed by `keySize`, values by
    /// their per-entry stride) and how many entries they hold, and returns false to stop. Returns false, having
    /// read nothing, when the map type has no batch lookup.
    func walkBatches(
        batchSize: Int, _ body: (_ keys: [UInt8], _ values: [UInt8], _ count: Int) throws -> Bool
    ) throws -> Bool {
        let valueStride = valueCount == 1 ? info.valueSize : valueCount * roundUp8(info.valueSize)
        var keys = [UInt8](repeating: 0, count: batchSize * info.keySize)
        var values = [UInt8](repeating: 0, count: batchSize * valueStride)
        // The batch token is opaque; for hash maps it is key-sized. 8 bytes more is a safe margin.
        var inToken = [UInt8](repeating: 0, count: max(info.keySize, 8) + 8)
        var outToken = inToken
        var first = true
        while true {
            var count = UInt32(batchSize)
            let rc = keys.withUnsafeMutableBytes { k in
                values.withUnsafeMutableBytes { v in
                    inToken.withUnsafeMutableBytes { i in
                        outToken.withUnsafeMutableBytes { o in
                            cbpf_map_lookup_batch(
                                fd, first ? nil : i.baseAddress, o.baseAddress, k.baseAddress, v.baseAddress, &count)
                        }
                    }
                }
            }
            let code = rc < 0 ? (rc == -1 ? errno : -rc) : 0
            if code == EINTR { continue }
            if first && (code == EINVAL || code == kernelENOTSUPP || code == EOPNOTSUPP) { return false }
            if code != 0 && code != ENOENT {
                throw AgentError.kernel("batch lookup in map \(name): \(errnoText(code))", errno: code)
            }
            if count > 0, try !body(keys, values, Int(count)) { return true }
            if code == ENOENT { return true }
            inToken = outToken
            first = false
        }
    }

    private func forEachKeyByKey(
        batchSize: Int, _ body: (_ keys: [[UInt8]], _ values: [[UInt8]]) throws -> Bool
    ) throws {
        var cursor: [UInt8]? = nil
        var seen = 0
        while true {
            var keys: [[UInt8]] = []
            var values: [[UInt8]] = []
            while keys.count < batchSize, let key = try nextKey(after: cursor) {
                cursor = key
                seen += 1
                if let value = try lookup(key: key) {
                    keys.append(key)
                    values.append(value)
                }
                if seen > info.maxEntries * 2 { break }
            }
            if keys.isEmpty { return }
            if try !body(keys, values) { return }
            if keys.count < batchSize || seen > info.maxEntries * 2 { return }
        }
    }

    /// Deletes `keys` with BPF_MAP_DELETE_BATCH where the kernel has it, else one by one.
    /// Returns how many were deleted; keys already gone are not an error.
    @discardableResult
    public func deleteBatch(_ keys: [[UInt8]]) throws -> Int {
        guard !keys.isEmpty else { return 0 }
        var flat = [UInt8]()
        flat.reserveCapacity(keys.count * info.keySize)
        for key in keys {
            guard key.count == info.keySize else {
                throw AgentError.datapath("map \(name): key of \(key.count) bytes, expected \(info.keySize)")
            }
            flat += key
        }
        var count = UInt32(keys.count)
        let rc = flat.withUnsafeBytes { cbpf_map_delete_batch(fd, $0.baseAddress, &count) }
        if rc == 0 { return Int(count) }
        // A batch stops at the first missing key (ENOENT) or is unsupported: finish one by one.
        var deleted = Int(count)
        for key in keys.dropFirst(Int(count)) where try delete(key: key) {
            deleted += 1
        }
        return deleted
    }
}

/// The kernel's internal ENOTSUPP (524), which BPF syscalls leak to user space for unsupported batch ops.
let kernelENOTSUPP: Int32 = 524
