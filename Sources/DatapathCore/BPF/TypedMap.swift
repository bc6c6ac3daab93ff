/// A map typed by the ABI structs of its key and value (from nodeagent_abi.h), so callers never handle bytes.
public struct TypedMap<Key: BitwiseCopyable, Value: BitwiseCopyable>: Sendable {
    public let map: BPFMap

    /// Fails when the structs' sizes do not match what the kernel says the map holds.
    public init(_ map: BPFMap) throws {
        guard MemoryLayout<Key>.size == map.info.keySize, MemoryLayout<Value>.size == map.info.valueSize else {
            throw AgentError.datapath(
                "map \(map.name): holds \(map.info.keySize)-byte keys and \(map.info.valueSize)-byte values, "
                    + "\(Key.self) is \(MemoryLayout<Key>.size) and \(Value.self) is \(MemoryLayout<Value>.size)")
        }
        self.map = map
    }

    public func lookup(_ key: Key) throws -> Value? {
        guard let bytes = try map.lookup(key: bytesOf(key)) else { return nil }
        return valueFrom(bytes, at: 0) as Value
    }

    /// For per-CPU maps: one value per possible CPU.
    public func lookupPerCPU(_ key: Key) throws -> [Value]? {
        guard let bytes = try map.lookup(key: bytesOf(key)) else { return nil }
        let stride = map.valueCount == 1 ? MemoryLayout<Value>.size : roundUp8(MemoryLayout<Value>.size)
        return (0..<map.valueCount).map { valueFrom(bytes, at: $0 * stride) }
    }

    public func update(_ key: Key, _ value: Value, flags: BPFUpdateFlags = .any) throws {
        var bytes = bytesOf(value)
        if map.valueCount > 1 {
            // Per-CPU update: the same value on every CPU, each slot 8-byte aligned.
            let slot = bytes + [UInt8](repeating: 0, count: roundUp8(bytes.count) - bytes.count)
            bytes = Array((0..<map.valueCount).map { _ in slot }.joined())
        }
        try map.update(key: bytesOf(key), value: bytes, flags: flags)
    }

    @discardableResult
    public func delete(_ key: Key) throws -> Bool {
        try map.delete(key: bytesOf(key))
    }

    /// Each entry in turn (first CPU's value for per-CPU maps), read in batches of `batchSize` where the kernel
    /// allows, straight from the batch buffers: a map of many entries costs no copy of it.
    public func forEachEntry(batchSize: Int = 512, _ body: (Key, Value) throws -> Void) throws {
        let keySize = map.info.keySize
        let batched = try map.walkBatches(batchSize: batchSize) { keys, values, count in
            let valueStride = values.count / batchSize
            try keys.withUnsafeBytes { k in
                try values.withUnsafeBytes { v in
                    for index in 0..<count {
                        try body(
                            k.loadUnaligned(fromByteOffset: index * keySize, as: Key.self),
                            v.loadUnaligned(fromByteOffset: index * valueStride, as: Value.self))
                    }
                }
            }
            return true
        }
        if !batched {
            try map.forEachBatch(batchSize: batchSize) { keys, values in
                for (k, v) in zip(keys, values) { try body(valueFrom(k, at: 0), valueFrom(v, at: 0)) }
                return true
            }
        }
    }

    /// Every entry (first CPU's value for per-CPU maps), read in batches where the kernel allows.
    public func entries() throws -> [(key: Key, value: Value)] {
        var result: [(key: Key, value: Value)] = []
        try forEachEntry(batchSize: 4096) { result.append(($0, $1)) }
        return result
    }
}

/// The bytes of an ABI struct, as the kernel sees them (padding included, zeroed by the struct's init).
public func bytesOf<T: BitwiseCopyable>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}

/// An ABI struct read from `bytes` at `offset` (unaligned-safe).
public func valueFrom<T: BitwiseCopyable>(_ bytes: [UInt8], at offset: Int) -> T {
    bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
}
