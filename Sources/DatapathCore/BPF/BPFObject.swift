import BPFObjects
import CLibbpf
import FoundationEssentials
import Glibc
import Synchronization

/// A BPF object (ELF from bpf/*.bpf.c, embedded at build time) loaded into the kernel.
///
/// With a pin directory every map of the object is pinned there by name; when a pin already exists the
/// kernel map behind it is reused, so a restarted agent keeps the state the datapath has been enforcing. A pinned
/// map of another shape (a previous version's layout, other sizes) is replaced by a new one: libbpf would refuse to
/// load the object over it.
public final class BPFObject: Sendable {
    public let name: String
    public let maps: [BPFMap]
    public let programs: [BPFProgram]
    /// Pins that held a map of another shape and now hold a new, empty map (what they held is lost).
    public let replacedPins: [String]

    private init(name: String, maps: [BPFMap], programs: [BPFProgram], replacedPins: [String]) {
        self.name = name
        self.maps = maps
        self.programs = programs
        self.replacedPins = replacedPins
    }

    /// The kernel structs each embedded object reads through CO-RE (`preserve_access_index` in bpf/*.bpf.c), with
    /// the size each field is read at. Their layout comes from `KernelBTF`, not from libbpf's load of the whole
    /// kernel BTF; a field an object reads and this list leaves out fails that object's load.
    static let kernelStructs: [String: [KernelStructUse]] = [
        "l7": [KernelStructUse("tcp_sock", fields: ["write_seq": 4])]
    ]

    public func map(named name: String) -> BPFMap? { maps.first { $0.name == name } }
    public func program(named name: String) -> BPFProgram? { programs.first { $0.name == name } }

    /// Opens the embedded object `name`, applies `maxEntries` overrides, reuses or creates pins under
    /// `pinDirectory` (nil: no pinning), and loads it. Maps named in `reusing` are those maps themselves, taken by
    /// descriptor (their size and layout are the given map's; no pin is looked at). The libbpf object is closed
    /// afterwards: maps and programs keep their own descriptors.
    public static func load(
        embedded name: String, pinDirectory: String?, maxEntries: [String: UInt32] = [:],
        reusing: [String: BPFMap] = [:]
    ) throws -> BPFObject {
        guard let elf = BPFObjects.object(named: name) else {
            throw AgentError.datapath("no BPF object named \(name) is embedded in this build")
        }
        return try load(elf: elf, name: name, pinDirectory: pinDirectory, maxEntries: maxEntries, reusing: reusing)
    }

    /// As `load(embedded:)`, for an object given as bytes: another build's object, which the micro benchmark
    /// compares with this build's in one run.
    public static func load(
        elf: [UInt8], name: String, pinDirectory: String?, maxEntries: [String: UInt32] = [:],
        reusing: [String: BPFMap] = [:]
    ) throws -> BPFObject {
        try LibbpfLog.capturing { () throws in
            try KernelBTF.withTarget(for: kernelStructs[name] ?? []) { kernelTypes in
                try load(
                    elf: elf, name: name, kernelTypes: kernelTypes, pinDirectory: pinDirectory,
                    maxEntries: maxEntries, reusing: reusing)
            }
        }
    }

    /// `load(elf:...)` with `kernelTypes`, the path of the BTF the object's CO-RE relocations are resolved against.
    private static func load(
        elf: [UInt8], name: String, kernelTypes: String?, pinDirectory: String?, maxEntries: [String: UInt32],
        reusing: [String: BPFMap]
    ) throws -> BPFObject {
        guard let object = elf.withUnsafeBytes({ cbpf_object_open_mem($0.baseAddress, $0.count, name, kernelTypes) })
        else {
            throw AgentError.datapath("opening BPF object \(name): \(errnoText(errno))")
        }
        defer { bpf_object__close(object) }
        var declared: [OpaquePointer] = []
        var map = bpf_object__next_map(object, nil)
        while let current = map {
            declared.append(current)
            map = bpf_object__next_map(object, current)
        }
        var replaced: [String] = []
        for map in declared {
            let mapName = String(cString: bpf_map__name(map))
            if let existing = reusing[mapName] {
                try bpfCall("reusing map \(mapName)") { bpf_map__reuse_fd(map, existing.fd) }
                continue
            }
            if let override = maxEntries[mapName] {
                try bpfCall("setting max entries of \(mapName)") { bpf_map__set_max_entries(map, override) }
            }
            // Internal maps (.rodata, named "<object>.rodata" by libbpf) are the object's own, never pinned.
            if let pinDirectory, !mapName.contains(".") {
                let path = "\(pinDirectory)/\(mapName)"
                if try unpinIfIncompatible(map, at: path) { replaced.append(mapName) }
                try bpfCall("setting pin path of \(mapName)") { bpf_map__set_pin_path(map, path) }
            }
        }
        try bpfCall("loading BPF object \(name)\(LibbpfLog.tail())") { bpf_object__load(object) }
        var maps: [BPFMap] = []
        for map in declared {
            let mapName = String(cString: bpf_map__name(map))
            // Internal maps (.rodata, .bss) are not the agent's to manage.
            if mapName.hasPrefix(".") || mapName.contains(".") { continue }
            let fd = try bpfCall("duplicating the descriptor of map \(mapName)") {
                fcntl(bpf_map__fd(map), F_DUPFD_CLOEXEC, 3)
            }
            maps.append(try BPFMap(adopting: fd))
        }
        var programs: [BPFProgram] = []
        var program = bpf_object__next_program(object, nil)
        while let current = program {
            programs.append(
                try BPFProgram(
                    name: String(cString: bpf_program__name(current)), duplicating: bpf_program__fd(current),
                    expectedAttachType: bpf_program__expected_attach_type(current).rawValue))
            program = bpf_object__next_program(object, current)
        }
        return BPFObject(name: name, maps: maps, programs: programs, replacedPins: replaced)
    }

    /// Removes the pin at `path` when the map behind it differs from the declared `map` in what libbpf checks
    /// before reusing a pin (type, key and value size, max entries, flags), so the load creates and pins a new map
    /// instead of failing. Programs still attached keep the old map until they are replaced.
    private static func unpinIfIncompatible(_ map: OpaquePointer, at path: String) throws -> Bool {
        guard let pinned = try BPFMap.openPinned(path) else { return false }
        let info = pinned.info
        let compatible =
            info.typeID == bpf_map__type(map).rawValue
            && info.keySize == Int(bpf_map__key_size(map)) && info.valueSize == Int(bpf_map__value_size(map))
            && info.maxEntries == Int(bpf_map__max_entries(map)) && info.flags == bpf_map__map_flags(map)
        if compatible { return false }
        try bpfCall("removing the incompatible pin \(path)") { unlink(path) }
        return true
    }
}
