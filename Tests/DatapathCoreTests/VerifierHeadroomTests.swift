import DatapathCore
import Foundation
import Glibc
import XCTest

/// The verifier's work on each endpoint program stays well below the kernel's complexity limit, so a program
/// that grows, or a kernel whose verifier explores more states, fails here before it fails to load on a node.
///
/// Each program is reported on one line, `verifier: kernel=<release> program=<name> instructions=<N>
/// limit=1000000 headroom=<pct>%`, which scripts/kernel-matrix.sh collects from every kernel it boots.
final class VerifierHeadroomTests: XCTestCase {
    /// BPF_COMPLEXITY_LIMIT_INSNS (include/linux/bpf.h): the verifier gives up after processing this many
    /// instructions of one program.
    static let complexityLimit = 1_000_000
    /// At least 30% of the limit stays unused, so a small change or another kernel's verifier has room.
    static let maximumInstructions = 700_000

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
    }

    func testEveryProgramLeavesThirtyPercentOfTheComplexityLimit() throws {
        // The sizes the agent loads with by default (its maps at their declared sizes, nothing pinned).
        let object = try BPFObject.load(embedded: "endpoint", pinDirectory: nil)
        XCTAssertEqual(
            Set(object.programs.map(\.name)),
            ["from_endpoint", "to_endpoint", "deliver_local", "from_netdev", "to_netdev"])
        try checkHeadroom(of: object)
    }

    func testEverySocketLoadBalancerProgramLeavesThirtyPercentOfTheComplexityLimit() throws {
        let object = try BPFObject.load(embedded: "sock", pinDirectory: nil)
        XCTAssertEqual(
            Set(object.programs.map(\.name)),
            [
                "na_sock4_connect", "na_sock6_connect", "na_sock4_sendmsg", "na_sock6_sendmsg", "na_sock4_recvmsg",
                "na_sock6_recvmsg", "na_sock4_getpeername", "na_sock6_getpeername",
            ])
        try checkHeadroom(of: object)
    }

    func testEveryHTTPPolicyProgramLeavesThirtyPercentOfTheComplexityLimit() throws {
        let object = try BPFObject.load(embedded: "l7", pinDirectory: nil)
        XCTAssertEqual(Set(object.programs.map(\.name)), ["na_l7_sockops", "na_l7_verdict"])
        try checkHeadroom(of: object)
    }

    private func checkHeadroom(of object: BPFObject) throws {
        let kernel = Self.kernelRelease()
        for program in object.programs {
            let prefix = "verifier: kernel=\(kernel) program=\(program.name)"
            guard let processed = try program.verifiedInstructions() else {
                // Kernels before 5.16 do not report the figure; the load itself is what can be checked there.
                print("\(prefix) instructions=unknown limit=\(Self.complexityLimit) headroom=unknown")
                continue
            }
            let headroom = 100 * (Self.complexityLimit - Int(processed)) / Self.complexityLimit
            print("\(prefix) instructions=\(processed) limit=\(Self.complexityLimit) headroom=\(headroom)%")
            XCTAssertGreaterThan(processed, 0, program.name)
            XCTAssertLessThanOrEqual(
                Int(processed), Self.maximumInstructions,
                "\(program.name): the verifier processed \(processed) instructions, \(headroom)% below the limit")
        }
    }

    /// `uname -r` of the running kernel.
    static func kernelRelease() -> String {
        var uts = utsname()
        uname(&uts)
        return withUnsafeBytes(of: uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
