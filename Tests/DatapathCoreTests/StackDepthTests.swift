import DatapathCore
import Foundation
import Glibc
import XCTest

/// The stack of every call chain of every program stays within what Debian 12's Linux 6.1 accepts, on whatever
/// kernel the tests run: 6.1's verifier rounds each function's frame up to 32 bytes and refuses a chain over 512,
/// while later kernels round a JIT-compiled frame to 16 and accept chains 6.1 refuses (a 544-byte chain loaded on
/// 6.18 and was refused on 6.1, twice).
///
/// Each program is reported on one line, `stack: program=<name> chain=<bytes> frames=<f0+f1+...>`.
final class StackDepthTests: XCTestCase {
    /// MAX_BPF_STACK: the most one call chain may use.
    static let limit = 512

    func testEveryChainOfEveryProgramFitsLinux61sStack() throws {
        guard geteuid() == 0 else { throw XCTSkip("reading a program's instructions needs root") }
        var programs = 0
        for name in ["endpoint", "sock", "l7"] {
            let object = try BPFObject.load(embedded: name, pinDirectory: nil)
            for program in object.programs {
                let chain = CallChainStack(try program.translated()).deepest()
                print("stack: program=\(program.name) chain=\(chain.bytes) frames=\(chain.frames.map(String.init))")
                XCTAssertGreaterThan(chain.bytes, 0, "\(program.name): no frame found")
                XCTAssertLessThanOrEqual(
                    chain.bytes, Self.limit,
                    "\(program.name): a chain of \(chain.frames) bytes, which Linux 6.1 refuses")
                programs += 1
            }
        }
        XCTAssertEqual(programs, 15)
    }

    // MARK: The count itself, on programs written out here

    private static let exit = BPFInstruction(code: 0x95)

    /// `*(u64 *)(r10 - depth) = r1`
    private static func store(_ depth: Int16) -> BPFInstruction {
        BPFInstruction(code: 0x7b, destination: 10, source: 1, offset: -depth)
    }

    /// `r1 = r10; r1 += -depth`: a pointer into the frame handed to a helper.
    private static func pointer(_ depth: Int32) -> [BPFInstruction] {
        [
            BPFInstruction(code: 0xbf, destination: 1, source: 10),
            BPFInstruction(code: 0x07, destination: 1, immediate: -depth),
        ]
    }

    /// A call of function `function` of the program, as the kernel dumps it: the function's index in `imm`.
    private static func call(_ function: Int32) -> BPFInstruction {
        BPFInstruction(code: 0x85, source: 1, immediate: function)
    }

    func testFramesAreRoundedAndTheDeepestChainIsTheSumAlongIt() {
        // f0 (200 bytes) calls f1 (a 200-byte pointer) which calls f2 (150 bytes): 224 + 224 + 160 = 608.
        // f0 is instructions 0-2 and calls f1, 3-6, which calls f2, 7-8.
        let nested =
            [Self.store(200), Self.call(1), Self.exit] + Self.pointer(200) + [Self.call(2), Self.exit]
            + [Self.store(150), Self.exit]
        var program = BPFProgram.Translated(instructions: nested, functionStarts: [0, 3, 7])
        let chain = CallChainStack(program).deepest()
        XCTAssertEqual(chain.frames, [224, 224, 160])
        XCTAssertEqual(chain.bytes, 608)

        // The same functions as siblings: f0 calls f1 and f2; the deepest chain is f0 and f1.
        program.instructions =
            [Self.store(200), Self.call(1), Self.call(2), Self.exit]
            + Self.pointer(200) + [Self.exit] + [Self.store(150), Self.exit]
        program.functionStarts = [0, 4, 7]
        let siblings = CallChainStack(program).deepest()
        XCTAssertEqual(siblings.frames, [224, 224])
        XCTAssertEqual(siblings.bytes, 448)
    }

    func testACallbackHandedToAHelperIsNotInTheChainAsLinux61CountsIt() {
        // f0 (8 bytes) hands f1 (500 bytes) to bpf_loop: `r2 = f1` is a two-slot load of a function's address,
        // the function's index in the second slot. f2 (300 bytes) is a callback too, its loop inlined by the
        // verifier into a call of it.
        let program = BPFProgram.Translated(
            instructions: [
                Self.store(8), BPFInstruction(code: 0x18, destination: 2, source: 4, immediate: 7),
                BPFInstruction(code: 0, immediate: 1), BPFInstruction(code: 0x85, immediate: 181),
                BPFInstruction(code: 0x18, destination: 2, source: 4, immediate: 5),
                BPFInstruction(code: 0, immediate: 2), Self.call(2), Self.exit,
                Self.store(500), Self.exit,
                Self.store(300), Self.exit,
            ],
            functionStarts: [0, 8, 10])
        let chain = CallChainStack(program).deepest()
        XCTAssertEqual(chain.frames, [32])
        XCTAssertEqual(chain.bytes, 32)
    }
}
