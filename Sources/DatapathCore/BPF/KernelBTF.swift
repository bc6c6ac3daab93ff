import AgentAPI
import CLibbpf
import Glibc

/// A kernel struct a BPF object reads through CO-RE (`preserve_access_index`): its name and the fields read, each
/// with the size the program reads it at.
struct KernelStructUse: Hashable, Sendable {
    public let name: String
    public let fields: [String: Int]

    public init(_ name: String, fields: [String: Int]) {
        self.name = name
        self.fields = fields
    }
}

/// Where the running kernel puts a struct's fields, as its BTF says.
struct KernelStructLayout: Equatable, Sendable {
    public struct Field: Equatable, Sendable {
        public let name: String
        /// Bytes from the start of the struct.
        public let offset: UInt32
        public let size: Int
    }

    public let name: String
    public let size: UInt32
    /// By offset.
    public let fields: [Field]
}

/// The layout of a few kernel structs, read from the kernel's BTF a chunk at a time.
///
/// libbpf resolves an object's CO-RE relocations against the kernel's whole BTF: it reads the file (5 MiB and more)
/// and builds its own copy beside it, ~11 MiB held while the object loads, which made that load the agent's peak
/// memory. The objects read a handful of fields, so the agent finds them itself, in two passes over the file with
/// one 64 KiB buffer (the names in the string section, then the types that carry them), and hands libbpf a BTF of
/// those structs alone (`KernelBTF.target`).
enum KernelBTF {
    static let vmlinux = "/sys/kernel/btf/vmlinux"

    /// The layouts of `uses`, in their order. Throws, naming it, for a struct or field the kernel lacks, a field of
    /// another size than the program reads, a bit field, or a file that is not BTF.
    static func layouts(
        of uses: [KernelStructUse], path: String = vmlinux
    ) throws(AgentError) -> [KernelStructLayout] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw AgentError.unavailable("the kernel's BTF is not readable (\(path): \(errnoText(errno)))")
        }
        defer { close(fd) }
        let reader = BTFReader(fd: fd, path: path)
        let header = try reader.header()
        let names = Set(uses.map(\.name) + uses.flatMap(\.fields.keys))
        let offsets = try reader.stringOffsets(
            of: names, from: header.strings.lowerBound, count: header.strings.count)
        for use in uses {
            guard offsets[use.name] != nil else { throw missing("struct \(use.name)", path) }
            for field in use.fields.keys where offsets[field] == nil {
                throw missing("field \(use.name).\(field)", path)
            }
        }
        let found = try reader.structs(
            uses.map { use in
                BTFReader.Wanted(
                    use: use, nameOffset: offsets[use.name]!,
                    fieldOffsets: Dictionary(uniqueKeysWithValues: use.fields.keys.map { (offsets[$0]!, $0) }))
            }, from: header.types.lowerBound, count: header.types.count)
        return try uses.map { use throws(AgentError) in
            guard let layout = found[use.name] else { throw missing("struct \(use.name)", path) }
            for (field, size) in use.fields {
                guard let placed = layout.fields.first(where: { $0.name == field }) else {
                    throw missing("field \(use.name).\(field)", path)
                }
                guard placed.size == size else {
                    throw AgentError.datapath(
                        "the kernel's \(use.name).\(field) is \(placed.size) bytes, the program reads \(size) (\(path))"
                    )
                }
            }
            return layout
        }
    }

    private static func missing(_ what: String, _ path: String) -> AgentError {
        AgentError.unavailable("the kernel's BTF has no \(what) (\(path))")
    }
}

/// BTF's layout (include/uapi/linux/btf.h, in the file's byte order, which must be the host's), read in order
/// through one buffer.
private final class BTFReader {
    struct Header {
        /// File offsets.
        let types: Range<Int>
        let strings: Range<Int>
    }

    struct Wanted {
        let use: KernelStructUse
        let nameOffset: UInt32
        /// Name offset → field name.
        let fieldOffsets: [UInt32: String]
    }

    private let fd: Int32
    private let path: String
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)
    /// File offset of buffer[0], bytes buffered, next byte to hand out.
    private var base = 0
    private var filled = 0
    private var next = 0

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { buffer.deallocate() }

    var position: Int { base + next }

    func seek(to offset: Int) {
        (base, filled, next) = (offset, 0, 0)
    }

    /// Reads on from the end of what is buffered; what was not handed out yet moves to the buffer's start.
    private func refill() throws(AgentError) {
        let kept = filled - next
        if kept > 0 { buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + next, byteCount: kept) }
        let start = base + filled
        var count: Int
        repeat {
            count = pread(fd, buffer.baseAddress! + kept, buffer.count - kept, off_t(start))
        } while count < 0 && errno == EINTR
        guard count > 0 else {
            throw AgentError.datapath(
                "reading the kernel's BTF (\(path)) at \(start): "
                    + (count < 0 ? errnoText(errno) : "the file ends early"))
        }
        (base, filled, next) = (start - kept, kept + count, 0)
    }

    func u32() throws(AgentError) -> UInt32 {
        while filled - next < 4 { try refill() }
        defer { next += 4 }
        return UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: next, as: UInt32.self))
    }

    func u16() throws(AgentError) -> UInt16 {
        while filled - next < 2 { try refill() }
        defer { next += 2 }
        return UInt16(littleEndian: buffer.loadUnaligned(fromByteOffset: next, as: UInt16.self))
    }

    func skip(_ bytes: Int) {
        let target = position + bytes
        if target <= base + filled {
            next = target - base
        } else {
            seek(to: target)
        }
    }

    func header() throws(AgentError) -> Header {
        seek(to: 0)
        let magic = try u16()
        guard magic == UInt16(BTF_MAGIC) else {
            throw AgentError.datapath(
                "\(path) is not BTF in this machine's byte order (magic 0x\(String(magic, radix: 16)))")
        }
        _ = try u16()  // version, flags
        let length = Int(try u32())
        let (typeOffset, typeLength) = (Int(try u32()), Int(try u32()))
        let (stringOffset, stringLength) = (Int(try u32()), Int(try u32()))
        return Header(
            types: (length + typeOffset)..<(length + typeOffset + typeLength),
            strings: (length + stringOffset)..<(length + stringOffset + stringLength))
    }

    /// The offset of each of `names` in the string section (BTF keeps one copy of each string).
    func stringOffsets(
        of names: Set<String>, from start: Int, count: Int
    ) throws(AgentError) -> [String: UInt32] {
        let wanted = Dictionary(uniqueKeysWithValues: names.map { (Array($0.utf8), $0) })
        let lengths = Set(wanted.keys.map(\.count))
        var found: [String: UInt32] = [:]
        seek(to: start)
        // Each string ends with a NUL; one that starts in a chunk and ends in the next is read again from its start.
        while position < start + count, found.count < wanted.count {
            try refill()
            let end = min(filled, start + count - base)
            var stringStart = next
            for index in next..<end where buffer[index] == 0 {
                if lengths.contains(index - stringStart) {
                    let bytes = Array(buffer[stringStart..<index])
                    if let name = wanted[bytes], found[name] == nil { found[name] = UInt32(base + stringStart - start) }
                }
                stringStart = index + 1
            }
            if stringStart < end, end < filled {
                throw AgentError.datapath("the kernel's BTF (\(path)) ends a string section inside a string")
            }
            next = stringStart
        }
        return found
    }

    /// Walks the type section once: the wanted structs with their wanted fields, each field's size resolved through
    /// typedefs and qualifiers.
    func structs(
        _ wanted: [Wanted], from start: Int, count: Int
    ) throws(AgentError) -> [String: KernelStructLayout] {
        let byName = Dictionary(uniqueKeysWithValues: wanted.map { ($0.nameOffset, $0) })
        // Per type id - 1: its size with `sized` set, or the type it stands for (typedefs and qualifiers), or 0.
        let sized: UInt32 = 1 << 31
        var links: [UInt32] = []
        var placed: [String: (size: UInt32, fields: [(name: String, offset: UInt32, type: UInt32)])] = [:]
        seek(to: start)
        while position < start + count {
            let (name, info, sizeOrType) = (try u32(), try u32(), try u32())
            let kind = Int((info >> 24) & 0x1f)
            let members = Int(info & 0xffff)
            let bitfields = info >> 31 != 0
            switch kind {
            case Int(BTF_KIND_INT):
                links.append(sized | sizeOrType)
                skip(4)
            case Int(BTF_KIND_PTR):
                links.append(sized | UInt32(MemoryLayout<UInt>.size))
            case Int(BTF_KIND_ARRAY):
                links.append(0)
                skip(12)
            case Int(BTF_KIND_STRUCT), Int(BTF_KIND_UNION):
                links.append(sized | sizeOrType)
                guard kind == Int(BTF_KIND_STRUCT), let want = byName[name] else {
                    skip(12 * members)
                    continue
                }
                guard placed[want.use.name] == nil else {
                    throw AgentError.datapath("the kernel's BTF (\(path)) has two structs \(want.use.name)")
                }
                var fields: [(name: String, offset: UInt32, type: UInt32)] = []
                for _ in 0..<members {
                    let (fieldName, type, offset) = (try u32(), try u32(), try u32())
                    guard let field = want.fieldOffsets[fieldName] else { continue }
                    let bits = bitfields ? offset & 0xff_ffff : offset
                    guard (bitfields ? offset >> 24 : 0) == 0, bits % 8 == 0 else {
                        throw AgentError.datapath(
                            "the kernel's \(want.use.name).\(field) is a bit field, which the program cannot read")
                    }
                    fields.append((field, bits / 8, type))
                }
                placed[want.use.name] = (sizeOrType, fields)
            case Int(BTF_KIND_ENUM):
                links.append(sized | sizeOrType)
                skip(8 * members)
            case Int(BTF_KIND_ENUM64):
                links.append(sized | sizeOrType)
                skip(12 * members)
            case Int(BTF_KIND_FLOAT):
                links.append(sized | sizeOrType)
            case Int(BTF_KIND_TYPEDEF), Int(BTF_KIND_VOLATILE), Int(BTF_KIND_CONST), Int(BTF_KIND_RESTRICT),
                Int(BTF_KIND_TYPE_TAG):
                links.append(sizeOrType)
            case Int(BTF_KIND_FWD), Int(BTF_KIND_FUNC):
                links.append(0)
            case Int(BTF_KIND_FUNC_PROTO):
                links.append(0)
                skip(8 * members)
            case Int(BTF_KIND_VAR), Int(BTF_KIND_DECL_TAG):
                links.append(0)
                skip(4)
            case Int(BTF_KIND_DATASEC):
                links.append(0)
                skip(12 * members)
            default:
                throw AgentError.datapath(
                    "the kernel's BTF (\(path)) has a type of kind \(kind), newer than this agent knows")
            }
        }
        func size(of type: UInt32) -> Int? {
            var type = type
            for _ in 0..<32 {
                guard type > 0, Int(type) <= links.count else { return nil }
                let link = links[Int(type) - 1]
                if link & sized != 0 { return Int(link & ~sized) }
                type = link
            }
            return nil
        }
        var layouts: [String: KernelStructLayout] = [:]
        for (name, entry) in placed {
            var fields: [KernelStructLayout.Field] = []
            for field in entry.fields {
                guard let bytes = size(of: field.type) else {
                    throw AgentError.datapath(
                        "the kernel's \(name).\(field.name) has a type whose size BTF does not give")
                }
                fields.append(KernelStructLayout.Field(name: field.name, offset: field.offset, size: bytes))
            }
            layouts[name] = KernelStructLayout(
                name: name, size: entry.size, fields: fields.sorted { $0.offset < $1.offset })
        }
        return layouts
    }
}
