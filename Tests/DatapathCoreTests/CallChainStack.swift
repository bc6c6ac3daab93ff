import DatapathCore

/// Each function's stack frame in a translated program, read from its instructions (the deepest slot addressed
/// from r10, directly or through a register that holds r10 plus a constant), and the chains of calls between
/// them, counted as Linux 6.1's verifier counts them: each frame rounded up to 32 bytes, callbacks left out.
struct CallChainStack {
    let program: BPFProgram.Translated

    init(_ program: BPFProgram.Translated) { self.program = program }

    /// The chain from the entry function with the most stack, each frame rounded up as Linux 6.1 rounds it.
    func deepest() -> (bytes: Int, frames: [Int]) {
        let frames = program.functionStarts.indices.map { roundedFrame(function: $0) }
        let callees = program.functionStarts.indices.map { self.callees(function: $0) }
        func walk(_ function: Int) -> [Int] {
            var below: [Int] = []
            for callee in callees[function] {
                let chain = walk(callee)
                if chain.reduce(0, +) > below.reduce(0, +) { below = chain }
            }
            return [frames[function]] + below
        }
        let chain = walk(0)
        return (chain.reduce(0, +), chain)
    }

    private func range(function: Int) -> Range<Int> {
        let starts = program.functionStarts
        let end = function + 1 < starts.count ? starts[function + 1] : program.instructions.count
        return starts[function]..<end
    }

    /// `round_up(max(depth, 1), 32)`.
    private func roundedFrame(function: Int) -> Int {
        (max(frame(function: function), 1) + 31) / 32 * 32
    }

    private func frame(function: Int) -> Int {
        var depth = 0
        var fromFrame = [Int?](repeating: nil, count: 11)  // what a register holds: r10 plus this, or nil
        fromFrame[10] = 0
        let body = range(function: function)
        var index = body.lowerBound
        while index < body.upperBound {
            let insn = program.instructions[index]
            let (dst, src) = (Int(insn.destination), Int(insn.source))
            index += 1
            guard dst < 11, src < 11 else { continue }
            switch insn.code & 0x07 {
            case 0x02, 0x03:  // ST, STX (atomics included): an address from the destination register
                if let base = fromFrame[dst] { depth = max(depth, -(base + Int(insn.offset))) }
            case 0x01:  // LDX: an address from the source register
                if let base = fromFrame[src] { depth = max(depth, -(base + Int(insn.offset))) }
                fromFrame[dst] = nil
            case 0x07:  // ALU64
                let usesRegister = insn.code & 0x08 != 0
                switch insn.code & 0xf0 {
                case 0xb0: fromFrame[dst] = usesRegister ? fromFrame[src] : nil  // mov
                case 0x00 where !usesRegister: fromFrame[dst] = fromFrame[dst].map { $0 + Int(insn.immediate) }
                case 0x10 where !usesRegister: fromFrame[dst] = fromFrame[dst].map { $0 - Int(insn.immediate) }
                default: fromFrame[dst] = nil
                }
                if let base = fromFrame[dst] { depth = max(depth, -base) }
            case 0x05 where insn.code == 0x85:  // call: r0-r5 no longer hold what they held
                for register in 0...5 { fromFrame[register] = nil }
            case 0x00 where insn.code == 0x18:  // a 64-bit load takes two slots
                fromFrame[dst] = nil
                index += 1
            case 0x04, 0x00:  // 32-bit ALU, other loads
                fromFrame[dst] = nil
            default:
                break
            }
        }
        return depth
    }

    /// The functions this one calls, as the kernel dumps a translated program: a call (BPF_PSEUDO_CALL) names its
    /// function's index in `imm`. A function whose address the caller loads (BPF_PSEUDO_FUNC, the index in the
    /// second slot's `imm`) is a callback handed to a helper (`bpf_loop`), which 6.1 leaves out of the chain; so
    /// is a call of one, which is how the verifier writes a `bpf_loop` it inlined.
    private func callees(function: Int) -> [Int] {
        var called: [Int] = []
        var callbacks: Set<Int> = []
        for index in range(function: function) {
            let insn = program.instructions[index]
            if insn.code == 0x85 && insn.source == 1 {
                called.append(Int(insn.immediate))
            } else if insn.code == 0x18 && insn.source == 4, index + 1 < program.instructions.count {
                callbacks.insert(Int(program.instructions[index + 1].immediate))
            }
        }
        var found: [Int] = []
        for callee in called
        where program.functionStarts.indices.contains(callee) && !callbacks.contains(callee) && callee != function
            && !found.contains(callee)
        {
            found.append(callee)
        }
        return found
    }
}
