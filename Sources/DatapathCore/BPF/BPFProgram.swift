import CLibbpf
import Glibc

/// A loaded BPF program, owning a descriptor of its own (it outlives the object it was loaded from).
public final class BPFProgram: Sendable {
    public let name: String
    /// The `bpf_attach_type` its section name implies (`cgroup/connect4`: BPF_CGROUP_INET4_CONNECT), what a link
    /// attaching it must name; 0 for programs attached without one (tc).
    public let expectedAttachType: UInt32
    private let descriptor: OwnedFD
    public var fd: Int32 { descriptor.raw }

    init(name: String, duplicating fd: Int32, expectedAttachType: UInt32 = 0) throws {
        let own = try bpfCall("duplicating the descriptor of program \(name)") { fcntl(fd, F_DUPFD_CLOEXEC, 3) }
        self.name = name
        self.expectedAttachType = expectedAttachType
        descriptor = OwnedFD(own)
    }

    /// The kernel's id of the program (what tc reports as attached).
    public func id() throws -> UInt32 {
        try Self.info(fd: fd, of: "program \(name)").info.id
    }

    /// What the kernel says of the program behind `fd`, and how many bytes of it the kernel filled in (a kernel
    /// older than these headers knows a shorter struct). `request` names buffers for the arrays the kernel should
    /// copy out too (instructions, function info), and their sizes.
    static func info(
        fd: Int32, of what: String, request: bpf_prog_info = bpf_prog_info()
    ) throws -> (info: bpf_prog_info, length: Int) {
        var info = request
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        try bpfCall("reading info of \(what)") { bpf_obj_get_info_by_fd(fd, &info, &length) }
        return (info, Int(length))
    }

    /// How many instructions the verifier processed to accept the program (`verified_insns`), the figure the
    /// kernel compares with its complexity limit of 1,000,000 (BPF_COMPLEXITY_LIMIT_INSNS). nil when the kernel
    /// does not report it: the field exists since Linux 5.16 and an older kernel leaves it zero.
    public func verifiedInstructions() throws -> UInt32? {
        let (info, length) = try Self.info(fd: fd, of: "program \(name)")
        // The kernel copies back only the prefix of the struct it knows; a shorter answer has no such field.
        let end = MemoryLayout<bpf_prog_info>.offset(of: \bpf_prog_info.verified_insns)! + MemoryLayout<UInt32>.size
        guard length >= end, info.verified_insns > 0 else { return nil }
        return info.verified_insns
    }

    /// Result of one BPF_PROG_TEST_RUN.
    public struct TestRunResult: Sendable {
        /// The program's return code (TC_ACT_OK = 0, TC_ACT_SHOT = 2 for tc programs).
        public var retval: UInt32
        /// Average run time per repetition, in nanoseconds, as the kernel measured it.
        public var durationNs: UInt32
        /// The packet after the program ran.
        public var packetOut: [UInt8]
    }

    /// Runs the program `repeat` times on `packet` with BPF_PROG_TEST_RUN. `ifindex` sets the skb's device
    /// (the kernel uses the loopback device of the current network namespace when it is not given).
    public func testRun(packet: [UInt8], repeat: UInt32 = 1, ifindex: UInt32? = nil) throws -> TestRunResult {
        var out = [UInt8](repeating: 0, count: max(packet.count, 64) + 256)
        var outSize = UInt32(out.count)
        var retval: UInt32 = 0
        var duration: UInt32 = 0
        try packet.withUnsafeBytes { p throws in
            try out.withUnsafeMutableBytes { o throws in
                _ = try bpfCall("test run of program \(name)") {
                    cbpf_prog_test_run(
                        fd, p.baseAddress, UInt32(p.count), o.baseAddress, &outSize, `repeat`, ifindex ?? 0, &retval,
                        &duration)
                }
            }
        }
        return TestRunResult(retval: retval, durationNs: duration, packetOut: Array(out.prefix(Int(outSize))))
    }

    /// Runs a program that takes only a context, such as a `SEC("syscall")` program, once with BPF_PROG_TEST_RUN:
    /// the kernel hands it `context` and writes back what it left there. Returns the program's return code.
    @discardableResult
    public func run<Context>(context: inout Context) throws -> UInt32 {
        var retval: UInt32 = 0
        let size = UInt32(MemoryLayout<Context>.size)
        try withUnsafeMutableBytes(of: &context) { raw throws in
            _ = try bpfCall("running program \(name)") { cbpf_prog_run_context(fd, raw.baseAddress, size, &retval) }
        }
        return retval
    }
}
