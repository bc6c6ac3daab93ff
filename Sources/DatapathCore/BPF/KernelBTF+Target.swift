import AgentAPI
import CGlibc
import CLibbpf
import Glibc

extension KernelBTF {
    /// A BTF of `layouts` alone, each field an unsigned integer of its size at its offset: all libbpf needs to
    /// place the fields an object reads (CO-RE compares a field's kind, not its integer's name or sign). Built with
    /// libbpf's BTF writer.
    static func target(_ layouts: [KernelStructLayout]) throws -> [UInt8] {
        guard let btf = btf__new_empty() else {
            throw AgentError.datapath("creating a BTF for the kernel's structs: \(errnoText(errno))")
        }
        defer { btf__free(btf) }
        var integers: [Int: Int32] = [:]
        for size in Set(layouts.flatMap { $0.fields.map(\.size) }).sorted() {
            integers[size] = try bpfCall("adding a \(size)-byte integer to a BTF") {
                btf__add_int(btf, "u\(size * 8)", size, 0)
            }
        }
        for layout in layouts {
            try bpfCall("adding struct \(layout.name) to a BTF") { btf__add_struct(btf, layout.name, layout.size) }
            for field in layout.fields {
                try bpfCall("adding \(layout.name).\(field.name) to a BTF") {
                    btf__add_field(btf, field.name, integers[field.size]!, field.offset * 8, 0)
                }
            }
        }
        var size: UInt32 = 0
        guard let raw = btf__raw_data(btf, &size) else {
            throw AgentError.datapath("encoding a BTF for the kernel's structs: \(errnoText(errno))")
        }
        return Array(UnsafeRawBufferPointer(start: raw, count: Int(size)))
    }

    /// Runs `body` with the path of a file holding `target(layouts(of: uses))`, or nil when `uses` is empty. The
    /// file is anonymous (memfd) and goes away with its descriptor after `body`.
    static func withTarget<T>(
        for uses: [KernelStructUse], _ body: (String?) throws -> T
    ) throws -> T {
        guard !uses.isEmpty else { return try body(nil) }
        let bytes = try target(layouts(of: uses))
        let fd = try bpfCall("creating a file for the kernel's structs") { cglibc_memfd("nodeagent-btf") }
        defer { close(fd) }
        var written = 0
        while written < bytes.count {
            let count = try bpfCall("writing the kernel's structs") {
                bytes.withUnsafeBytes { Int32(write(fd, $0.baseAddress! + written, $0.count - written)) }
            }
            written += Int(count)
        }
        return try body("/proc/self/fd/\(fd)")
    }
}
