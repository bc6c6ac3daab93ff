import CLibbpf
import Glibc

/// One eBPF instruction as the kernel holds it (`struct bpf_insn`).
public struct BPFInstruction: Sendable, Equatable {
    public var code: UInt8
    public var destination: UInt8
    public var source: UInt8
    public var offset: Int16
    public var immediate: Int32

    public init(code: UInt8, destination: UInt8 = 0, source: UInt8 = 0, offset: Int16 = 0, immediate: Int32 = 0) {
        self.code = code
        self.destination = destination
        self.source = source
        self.offset = offset
        self.immediate = immediate
    }
}

extension BPFProgram {
    /// A loaded program as the kernel runs it, after the verifier's rewrites, with where each of its functions
    /// (the entry and every subprogram, in order) starts.
    public struct Translated: Sendable {
        public var instructions: [BPFInstruction]
        public var functionStarts: [Int]

        public init(instructions: [BPFInstruction], functionStarts: [Int]) {
            self.instructions = instructions
            self.functionStarts = functionStarts
        }
    }

    /// The program's translated instructions and function starts (BTF func info). The kernel gives the
    /// instructions only to a caller allowed to read kernel addresses (root); without func info (an object built
    /// without BTF) the whole program reads as one function.
    public func translated() throws -> Translated {
        let (sizes, _) = try Self.info(fd: fd, of: "program \(name)")
        let count = Int(sizes.xlated_prog_len) / MemoryLayout<bpf_insn>.size
        guard count > 0 else {
            throw AgentError.datapath("the kernel gives no instructions of program \(name) to this process")
        }
        var raw = [bpf_insn](repeating: bpf_insn(), count: count)
        var functions = [bpf_func_info](repeating: bpf_func_info(), count: Int(sizes.nr_func_info))
        try raw.withUnsafeMutableBytes { insns in
            try functions.withUnsafeMutableBytes { funcs in
                var request = bpf_prog_info()
                request.xlated_prog_len = UInt32(insns.count)
                request.xlated_prog_insns = UInt64(UInt(bitPattern: insns.baseAddress))
                request.nr_func_info = UInt32(funcs.count / MemoryLayout<bpf_func_info>.size)
                request.func_info_rec_size = UInt32(MemoryLayout<bpf_func_info>.size)
                request.func_info = UInt64(UInt(bitPattern: funcs.baseAddress))
                _ = try Self.info(fd: fd, of: "the instructions of program \(name)", request: request)
            }
        }
        let instructions = raw.map { insn in
            withUnsafeBytes(of: insn) { bytes in
                BPFInstruction(
                    code: bytes[0], destination: bytes[1] & 0x0f, source: bytes[1] >> 4,
                    offset: bytes.loadUnaligned(fromByteOffset: 2, as: Int16.self),
                    immediate: bytes.loadUnaligned(fromByteOffset: 4, as: Int32.self))
            }
        }
        let starts = functions.map { Int($0.insn_off) }.sorted()
        return Translated(instructions: instructions, functionStarts: starts.isEmpty ? [0] : starts)
    }
}
