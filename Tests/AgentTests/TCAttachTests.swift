import CLibbpf
import DatapathCore
import Foundation
import Glibc
import XCTest

/// Our programs on an interface's tc hooks: through a pinned tcx link where the kernel has tcx (one link of ours
/// per hook, its program swapped in place, attached after this process lets go of it, another tool's programs left
/// alone, an older agent's clsact filter taken over), clsact filters before.
final class TCAttachTests: TCHookTestCase {
    override class var tag: String { "tca" }
    private var links: String { "\(pins)/ours" }

    func testOneLinkOfOursIsAttachedGivenANewProgramInPlaceAndDetached() throws {
        let (first, second) = (try load(), try load())
        let a = try XCTUnwrap(first.program(named: "from_endpoint"))
        let b = try XCTUnwrap(second.program(named: "from_endpoint"))
        let (index, links) = (ifindex, links)
        try netns.run { try TC.attach(a, ifindex: index, point: .ingress, links: links) }
        XCTAssertEqual(try attached(links), try a.id())
        guard TC.usesTCX else {
            XCTAssertTrue(try filters().contains("from_endpoint"), "a clsact filter before Linux 6.6")
            XCTAssertEqual(try tcxNames(), [])
            XCTAssertTrue(try netns.run { try TC.detach(ifindex: index, point: .ingress, links: links) })
            XCTAssertFalse(try filters().contains("bpf"))
            return
        }
        // Nothing of this process holds the link now: its pin keeps the program attached.
        XCTAssertEqual(try tcxNames(), ["from_endpoint"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(links)/\(index)_ingress"))
        XCTAssertFalse(try filters().contains("bpf"), "no clsact filter where tcx is used")

        // Another instance (an agent restarted with a new object) takes the first one's place in the same link.
        try netns.run { try TC.attach(b, ifindex: index, point: .ingress, links: links) }
        XCTAssertEqual(try tcxNames(), ["from_endpoint"])
        XCTAssertEqual(try attached(links), try b.id())
        // The same program again changes nothing.
        try netns.run { try TC.attach(b, ifindex: index, point: .ingress, links: links) }
        XCTAssertEqual(try tcxNames(), ["from_endpoint"])

        XCTAssertTrue(try netns.run { try TC.detach(ifindex: index, point: .ingress, links: links) })
        XCTAssertEqual(try tcxNames(), [])
        XCTAssertNil(try attached(links))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(links)/\(index)_ingress"), "the pin is gone")
        XCTAssertFalse(try netns.run { try TC.detach(ifindex: index, point: .ingress, links: links) })
    }

    func testAnOlderAgentsFilterIsTakenOverAndAnotherToolsProgramStays() throws {
        guard TC.usesTCX else { throw XCTSkip("this kernel has no tcx (Linux 6.6)") }
        let (older, current, other) = (try load(), try load(), try load())
        let old = try XCTUnwrap(older.program(named: "from_endpoint"))
        let new = try XCTUnwrap(current.program(named: "from_endpoint"))
        let foreign = try XCTUnwrap(other.program(named: "to_endpoint"))
        let (index, links, foreignLinks) = (ifindex, links, "\(pins)/other")
        // Another tool's tcx link, and an older agent's clsact filter (our handle and priority).
        try netns.run {
            try TC.attach(foreign, ifindex: index, point: .ingress, links: foreignLinks)
            guard cbpf_tc_hook_create(index, BPF_TC_INGRESS) == 0,
                cbpf_tc_attach(index, BPF_TC_INGRESS, old.fd, 0x4e41, 1) == 0
            else { throw ScratchError("setting up a clsact filter: \(String(cString: strerror(errno)))") }
        }
        XCTAssertTrue(try filters().contains("from_endpoint"))
        XCTAssertEqual(try tcxNames(), ["to_endpoint"])

        try netns.run { try TC.attach(new, ifindex: index, point: .ingress, links: links) }
        XCTAssertEqual(try tcxNames(), ["to_endpoint", "from_endpoint"], "ours runs after what was there")
        XCTAssertFalse(try filters().contains("bpf"), "the older agent's filter is gone")
        XCTAssertEqual(try attached(links), try new.id())

        XCTAssertTrue(try netns.run { try TC.detach(ifindex: index, point: .ingress, links: links) })
        XCTAssertEqual(try tcxNames(), ["to_endpoint"], "another tool's program is not ours to remove")
        XCTAssertEqual(try attached(foreignLinks), try foreign.id())
    }
}
