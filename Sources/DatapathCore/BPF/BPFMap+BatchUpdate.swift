import CLibbpf
import Glibc

extension BPFMap {
    /// Writes `keys[i] → values[i]` with BPF_MAP_UPDATE_BATCH (one syscall per chunk of entries instead of one per
    /// entry), falling back to element updates on kernels or map types without batch support.
    /// Values are full values as `update` takes them (all CPUs' slots back to back for per-CPU maps).
    /// Returns how many entries were written; the first entry the kernel refuses ends the call with an error.
    /// The batch call accepts no NOEXIST/EXIST (its element flags only take BPF_F_LOCK): with those flags
    /// entries are written one by one.
    @discardableResult
    public func updateBatch(
        keys: [[UInt8]], values: [[UInt8]], flags: BPFUpdateFlags = .any, chunkSize: Int = 65536
    ) throws -> Int {
        guard keys.count == values.count else {
            throw AgentError.datapath("map \(name): batch update of \(keys.count) keys with \(values.count) values")
        }
        let valueStride = valueCount == 1 ? info.valueSize : valueCount * roundUp8(info.valueSize)
        var written = 0
        while written < keys.count && flags == .any {
            let end = min(written + max(chunkSize, 1), keys.count)
            var flatKeys = [UInt8]()
            var flatValues = [UInt8]()
            flatKeys.reserveCapacity((end - written) * info.keySize)
            flatValues.reserveCapacity((end - written) * valueStride)
            for index in written..<end {
                guard keys[index].count == info.keySize, values[index].count == valueStride else {
                    throw AgentError.datapath(
                        "map \(name): entry \(index) has a \(keys[index].count)-byte key and a "
                            + "\(values[index].count)-byte value, expected \(info.keySize) and \(valueStride)")
                }
                flatKeys += keys[index]
                flatValues += values[index]
            }
            let done = try updateChunk(flatKeys, flatValues, count: end - written)
            if done < 0 { break }  // unsupported here: element by element from this chunk on
            written += done
        }
        for index in written..<keys.count {
            try update(key: keys[index], value: values[index], flags: flags)
        }
        return keys.count
    }

    /// Writes one `value` under every index of an array map below `count` (all of them by default), in batches of
    /// at most 4,096 entries and 16 KiB of values, whose buffers are the only memory it takes: no array per entry,
    /// as `updateBatch` takes them, and no buffer large enough to leave the heap larger after it.
    public func fill(_ value: [UInt8], count: Int? = nil) throws {
        let total = count ?? info.maxEntries
        guard info.keySize == 4, value.count == info.valueSize, valueCount == 1 else {
            throw AgentError.datapath("map \(name): fill needs an array map and a \(info.valueSize)-byte value")
        }
        let batch = max(1, min(4096, 16384 / max(value.count, 1)))
        var values: [UInt8] = []
        values.reserveCapacity(min(total, batch) * value.count)
        for _ in 0..<min(total, batch) { values += value }
        var start = 0
        while start < total {
            let chunk = min(batch, total - start)
            var keys: [UInt8] = []
            keys.reserveCapacity(chunk * 4)
            for index in start..<start + chunk { withUnsafeBytes(of: UInt32(index)) { keys.append(contentsOf: $0) } }
            let slice = chunk == batch ? values : Array(values.prefix(chunk * value.count))
            if try updateChunk(keys, slice, count: chunk) < 0 {
                for index in start..<start + chunk { try update(key: bytesOf(UInt32(index)), value: value) }
            }
            start += chunk
        }
    }

    /// One BPF_MAP_UPDATE_BATCH call, repeated after EINTR for the entries not yet written.
    /// Returns -1 when the kernel has no batch update for this map (nothing was written then).
    private func updateChunk(_ keys: [UInt8], _ values: [UInt8], count total: Int) throws -> Int {
        let valueStride = values.count / max(total, 1)
        var done = 0
        while done < total {
            var count = UInt32(total - done)
            let rc = keys.withUnsafeBytes { k in
                values.withUnsafeBytes { v in
                    cbpf_map_update_batch(
                        fd, k.baseAddress! + done * info.keySize, v.baseAddress! + done * valueStride, &count, 0)
                }
            }
            // On failure the kernel still reports how many entries it wrote before the one it refused.
            done += Int(count)
            if rc == 0 { continue }
            let code = rc == -1 ? errno : -rc
            if code == EINTR { continue }
            if done == 0 && (code == EINVAL || code == kernelENOTSUPP || code == EOPNOTSUPP) { return -1 }
            throw AgentError.datapath(
                "batch update of map \(name): \(errnoText(code)) after \(done) of \(total) entries")
        }
        return done
    }
}
