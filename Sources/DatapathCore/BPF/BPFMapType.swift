import CLibbpf

/// The BPF map types the agent creates or decodes, with the names bpftool uses.
public enum BPFMapType: UInt32, Sendable, CaseIterable {
    case hash = 1
    case array = 2
    case progArray = 3
    case perCPUHash = 5
    case perCPUArray = 6
    case lruHash = 9
    case lpmTrie = 11
    case hashOfMaps = 13
    case ringBuffer = 27

    public var name: String {
        switch self {
        case .hash: "hash"
        case .array: "array"
        case .progArray: "prog_array"
        case .perCPUHash: "percpu_hash"
        case .perCPUArray: "percpu_array"
        case .lruHash: "lru_hash"
        case .lpmTrie: "lpm_trie"
        case .hashOfMaps: "hash_of_maps"
        case .ringBuffer: "ringbuf"
        }
    }

    /// Per-CPU maps hold one value per possible CPU; lookups return all of them.
    public var isPerCPU: Bool { self == .perCPUHash || self == .perCPUArray }

    /// Maps whose entries can be listed key by key.
    public var isIterable: Bool { self != .ringBuffer }
}

/// What the kernel reports about a map.
public struct BPFMapInfo: Sendable, Equatable {
    public var name: String
    public var typeID: UInt32
    public var keySize: Int
    public var valueSize: Int
    public var maxEntries: Int
    public var flags: UInt32
    public var id: UInt32

    public var type: BPFMapType? { BPFMapType(rawValue: typeID) }
    public var typeName: String { type?.name ?? "type-\(typeID)" }
}

/// Flags of BPF_MAP_UPDATE_ELEM.
public enum BPFUpdateFlags: UInt64, Sendable {
    case any = 0
    case noExist = 1
    case exist = 2
}
