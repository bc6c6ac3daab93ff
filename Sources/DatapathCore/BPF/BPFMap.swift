import CLibbpf
import Glibc

/// A handle to a kernel BPF map, owning its file descriptor. Key and value are raw bytes here;
/// `TypedMap` puts the ABI structs on top.
public final class BPFMap: Sendable {
    public let info: BPFMapInfo
    private let descriptor: OwnedFD
    /// Number of values a lookup returns: possible CPUs for per-CPU maps, 1 otherwise.
    public let valueCount: Int

    public var fd: Int32 { descriptor.raw }
    public var name: String { info.name }

    init(adopting fd: Int32) throws {
        descriptor = OwnedFD(fd)
        var raw = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        try bpfCall("reading map info of fd \(fd)") { bpf_obj_get_info_by_fd(fd, &raw, &length) }
        let name = withUnsafeBytes(of: raw.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        info = BPFMapInfo(
            name: name, typeID: raw.type, keySize: Int(raw.key_size), valueSize: Int(raw.value_size),
            maxEntries: Int(raw.max_entries), flags: raw.map_flags, id: raw.id)
        let perCPU = BPFMapType(rawValue: raw.type)?.isPerCPU ?? false
        valueCount = perCPU ? max(Int(libbpf_num_possible_cpus()), 1) : 1
    }

    /// Creates a map outside any object (per-endpoint policy maps).
    public static func create(
        type: BPFMapType, name: String, keySize: Int, valueSize: Int, maxEntries: Int, flags: UInt32 = 0
    ) throws -> BPFMap {
        let fd = try bpfCall("creating \(type.name) map \(name)") {
            cbpf_map_create(
                bpf_map_type(type.rawValue), name, UInt32(keySize), UInt32(valueSize), UInt32(maxEntries), flags)
        }
        return try BPFMap(adopting: fd)
    }

    /// Opens a map pinned in bpffs, or nil when nothing is pinned at `path`.
    public static func openPinned(_ path: String) throws -> BPFMap? {
        let fd = try bpfCall("opening pinned map \(path)", tolerating: [ENOENT]) { bpf_obj_get(path) }
        return fd < 0 ? nil : try BPFMap(adopting: fd)
    }

    /// Pins the map at `path` (bpffs). An existing pin of the same map is fine.
    public func pin(at path: String) throws {
        let rc = try bpfCall("pinning map \(name) at \(path)", tolerating: [EEXIST]) { bpf_obj_pin(fd, path) }
        if rc == -EEXIST {
            guard let pinned = try BPFMap.openPinned(path), pinned.info.id == info.id else {
                throw AgentError.datapath("pinning map \(name) at \(path): another map is pinned there")
            }
        }
    }

    // MARK: Element operations on raw bytes

    private var valueBytes: Int { valueCount == 1 ? info.valueSize : valueCount * roundUp8(info.valueSize) }

    private func checkKey(_ key: [UInt8]) throws {
        guard key.count == info.keySize else {
            throw AgentError.datapath("map \(name): key of \(key.count) bytes, expected \(info.keySize)")
        }
    }

    /// The value stored under `key` (all CPUs' values back to back, 8-byte aligned, for per-CPU maps), or nil.
    public func lookup(key: [UInt8]) throws -> [UInt8]? {
        try checkKey(key)
        var value = [UInt8](repeating: 0, count: valueBytes)
        let rc = try key.withUnsafeBytes { k throws in
            try value.withUnsafeMutableBytes { v throws in
                try bpfCall("looking up in map \(name)", tolerating: [ENOENT]) {
                    bpf_map_lookup_elem(fd, k.baseAddress, v.baseAddress)
                }
            }
        }
        return rc < 0 ? nil : value
    }

    public func update(key: [UInt8], value: [UInt8], flags: BPFUpdateFlags = .any) throws {
        try checkKey(key)
        guard value.count == valueBytes else {
            throw AgentError.datapath("map \(name): value of \(value.count) bytes, expected \(valueBytes)")
        }
        try key.withUnsafeBytes { k throws in
            try value.withUnsafeBytes { v throws in
                _ = try bpfCall("updating map \(name)") {
                    bpf_map_update_elem(fd, k.baseAddress, v.baseAddress, flags.rawValue)
                }
            }
        }
    }

    /// Deletes `key`; false when it was not there.
    @discardableResult
    public func delete(key: [UInt8]) throws -> Bool {
        try checkKey(key)
        let rc = try key.withUnsafeBytes { k throws in
            try bpfCall("deleting from map \(name)", tolerating: [ENOENT]) { bpf_map_delete_elem(fd, k.baseAddress) }
        }
        return rc >= 0
    }

    /// The key after `key` in the map's iteration order (the first key for nil), or nil at the end.
    public func nextKey(after key: [UInt8]?) throws -> [UInt8]? {
        var next = [UInt8](repeating: 0, count: info.keySize)
        let rc = try next.withUnsafeMutableBytes { n throws in
            if let key {
                try checkKey(key)
                return try key.withUnsafeBytes { k throws in
                    try bpfCall("iterating map \(name)", tolerating: [ENOENT]) {
                        bpf_map_get_next_key(fd, k.baseAddress, n.baseAddress)
                    }
                }
            }
            return try bpfCall("iterating map \(name)", tolerating: [ENOENT]) {
                bpf_map_get_next_key(fd, nil, n.baseAddress)
            }
        }
        return rc < 0 ? nil : next
    }

    /// All keys. For large maps prefer `forEachBatch` or paging with `nextKey`.
    public func keys() throws -> [[UInt8]] {
        var result: [[UInt8]] = []
        var cursor: [UInt8]? = nil
        while let key = try nextKey(after: cursor) {
            result.append(key)
            cursor = key
            if result.count > info.maxEntries { break }  // a map mutating under us cannot loop forever
        }
        return result
    }

    /// Number of entries. The kernel keeps no count for hash maps; see `countEntries(batchSize:)`.
    public func count() throws -> Int { try countEntries() }
}

func roundUp8(_ n: Int) -> Int { (n + 7) & ~7 }
