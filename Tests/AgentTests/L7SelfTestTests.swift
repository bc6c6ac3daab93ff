import DatapathCore
import Foundation
import Glibc
import XCTest

@testable import Agent

/// The start-up self-test against the real kernel. It needs the sockops program over the test process's own
/// sockets, so the passing case attaches it at the root of the cgroup v2 hierarchy: it enrolls only sockets whose
/// address and port the test's own pinned maps list (a random loopback address in a private namespace), and the
/// link is unpinned when the test ends.
final class L7SelfTestTests: XCTestCase {
    let tag = String(format: "%04x", UInt32.random(in: 0...0xffff))
    var pinRoot: String { "/sys/fs/bpf/nodeagent-test-l7st-\(tag)" }
    var cgroup: String?

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("namespaces, cgroups and BPF programs need root") }
    }

    override func tearDown() {
        try? L7Enforcement.detach(pinRoot: pinRoot)
        BPFFS.removeAll(root: pinRoot)
        if let cgroup { rmdir(cgroup) }
    }

    func testSelfTestPassesWhenTheAgentsSocketsAreEnrolled() throws {
        let root = try XCTUnwrap(ServicePods.cgroup2Mount())
        let enforcement = try L7Enforcement.start(cgroupRoot: root, pinRoot: pinRoot)
        defer { enforcement.stop() }
        XCTAssertNil(L7SelfTest.run(enforcement.datapath))
        // The test entry is gone afterwards.
        XCTAssertEqual(try enforcement.datapath.ports.entries().count, 0)
    }

    func testSelfTestNamesTheStepThatFailsWhenTheAgentIsOutsideTheCgroupRoot() throws {
        let root = try XCTUnwrap(ServicePods.cgroup2Mount())
        let empty = "\(root)/nodeagent-test-l7st-\(tag)"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false)
        cgroup = empty
        let enforcement = try L7Enforcement.start(cgroupRoot: empty, pinRoot: pinRoot)
        defer { enforcement.stop() }
        let failure = L7SelfTest.run(enforcement.datapath, timeout: 0.5)
        XCTAssertEqual(failure?.step, "denied request answered", "\(String(describing: failure))")
    }
}
