import CLibbpf
import Foundation
import Glibc
import XCTest

@testable import Preflight

/// The live probe on this machine (a recent kernel with everything the agent uses, run as root).
final class LiveKernelProbeTests: XCTestCase {
    func testThisKernelHasEverythingAndTheProbeLeavesNothingBehind() throws {
        try XCTSkipUnless(getuid() == 0, "the probes load programs and create a network namespace")
        try XCTSkipUnless(KernelFilesystems.isBPFFS("/sys/fs/bpf"), "bpffs is mounted at /sys/fs/bpf here")
        let before = try tcSetupOfLoopback()

        let report = PreflightReport.evaluate(
            LiveKernelProbe(pinRoot: "/sys/fs/bpf/na-preflight-\(UInt32.random(in: 1...UInt32.max))"),
            for: AgentFeature.configured(plugins: [:], cluster: true))

        XCTAssertTrue(report.passed, report.lines().joined(separator: "\n"))
        XCTAssertEqual(report.items.filter { $0.status != .ok }, [], report.lines().joined(separator: "\n"))
        var uts = utsname()
        uname(&uts)
        XCTAssertEqual(
            report.kernel, withUnsafeBytes(of: uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
        XCTAssertEqual(try tcSetupOfLoopback(), before, "the clsact probe ran in a namespace of its own")
    }

    func testAPinRootOffBPFFSIsMissing() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "na-preflight-\(UInt32.random(in: 1...UInt32.max))"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let root = directory + "/bpf"

        let facts = LiveKernelProbe(pinRoot: root).features()
        XCTAssertEqual(facts.pinRootState, .notOnBPFFS)
        let report = PreflightReport.evaluate(facts, for: [])
        XCTAssertEqual(
            report.lines(onlyMissing: true),
            [
                "missing  bpffs (needed by core): \(root) is not on a BPF filesystem (mount one with: mount -t bpf "
                    + "bpf \(directory)); maps are pinned there so they outlive an agent restart"
            ])
        XCTAssertFalse(FileManager.default.fileExists(atPath: root), "the probe creates nothing")
    }

    /// `tc qdisc show dev lo` and `tc filter show dev lo ingress` of the test's network namespace.
    private func tcSetupOfLoopback() throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "tc qdisc show dev lo; tc filter show dev lo ingress 2>&1"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self)
    }
}
