import DatapathCore
import Foundation
import Glibc
import XCTest

/// `CgroupV2.prepare` mounts cgroup v2 where the configured root is not one (as Cilium mounts
/// /run/cilium/cgroupv2), and that mount shows the machine's one hierarchy. Nothing is attached here.
final class CgroupV2Tests: XCTestCase {
    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("mounting cgroup v2 needs root") }
    }

    func testPrepareMountsTheOneHierarchyWhereNoneIsAndReusesAnExistingOne() throws {
        let root = "/tmp/nodeagent-cgroup2-\(String(format: "%04x", UInt32.random(in: 0...0xffff)))"
        defer {
            _ = umount2(root, 0)
            _ = rmdir(root)
        }
        XCTAssertFalse(CgroupV2.isCgroup2("/tmp"))
        try CgroupV2.prepare(root: root)
        XCTAssertTrue(CgroupV2.isCgroup2(root))
        let machine = try XCTUnwrap(Self.cgroup2Mounts().first { $0 != root })
        XCTAssertEqual(try CgroupV2.id(of: root), try CgroupV2.id(of: machine), "a second mount of the same root")

        let mounts = Self.cgroup2Mounts().count
        try CgroupV2.prepare(root: root)
        XCTAssertEqual(Self.cgroup2Mounts().count, mounts, "an existing cgroup v2 root is used as it is")
    }

    static func cgroup2Mounts() -> [String] {
        let text = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        var mounts: [String] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 2, fields[2] == "cgroup2" { mounts.append(String(fields[1])) }
        }
        return mounts
    }
}
