import DatapathCore
import Foundation
import Glibc
import XCTest

/// Hooks attached without waiting for the kernel: on a clsact filter at once, on a tcx link once hooks stop
/// changing, never with neither, and never moved when the agent no longer wants them there.
final class TCXMovesTests: TCHookTestCase {
    override class var tag: String { "tcm" }
    private var links: String { "\(pins)/links" }

    private func program(_ name: String = "from_endpoint") throws -> (BPFObject, BPFProgram) {
        let object = try load()
        return (object, try XCTUnwrap(object.program(named: name)))
    }

    /// Whether a bpf filter is on the interface's ingress hook.
    private func hasFilter() throws -> Bool { try filters().contains("bpf") }
    private func attached() throws -> UInt32? { try attached(links) }

    private func attach(_ program: BPFProgram, _ moves: TCXMoves) throws {
        let index = ifindex
        try netns.run { try moves.attach(program, ifindex: index, point: .ingress) }
    }

    func testAHookGoesOnAFilterAtOnceAndOntoALinkOnceHooksStopChanging() throws {
        let ((_, first), (_, second)) = (try program(), try program())
        let moves = TCXMoves(links: links, quiet: .milliseconds(300))
        defer { moves.stop() }
        try attach(first, moves)
        XCTAssertEqual(try attached(), try first.id())
        guard TC.usesTCX else {
            XCTAssertTrue(try hasFilter(), "a clsact filter before Linux 6.6, and nothing to move")
            return XCTAssertEqual(moves.waiting, 0)
        }
        XCTAssertTrue(try hasFilter(), "the program is on a filter before the attach returns")
        XCTAssertEqual(try tcxNames(), [])
        XCTAssertEqual(moves.waiting, 1)

        let deadline = Date().addingTimeInterval(10)
        while moves.waiting > 0 && Date() < deadline { usleep(20_000) }
        XCTAssertEqual(moves.waiting, 0, "moved within 10 s of a quiet period of 0.3 s")
        XCTAssertEqual(try tcxNames(), ["from_endpoint"])
        XCTAssertFalse(try hasFilter(), "the filter is gone once the link is in place")
        XCTAssertEqual(try attached(), try first.id())
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(links)/\(ifindex)_ingress"))

        // A hook on a link gets the next program swapped in, with nothing left to move.
        try attach(second, moves)
        XCTAssertEqual(moves.waiting, 0)
        XCTAssertFalse(try hasFilter())
        XCTAssertEqual(try tcxNames(), ["from_endpoint"])
        XCTAssertEqual(try attached(), try second.id())
    }

    func testNothingMovesWhileHooksKeepChangingAndMoveAllMovesAtOnce() throws {
        guard TC.usesTCX else { throw XCTSkip("this kernel has no tcx (Linux 6.6)") }
        let ((_, first), (_, second)) = (try program(), try program())
        let moves = TCXMoves(links: links, quiet: .seconds(3600))
        defer { moves.stop() }
        try attach(first, moves)
        try attach(second, moves)
        usleep(300_000)
        XCTAssertEqual(moves.waiting, 1, "one hook, waiting with its latest program")
        XCTAssertEqual(try tcxNames(), [], "no move before the hooks have been quiet")
        XCTAssertEqual(try attached(), try second.id())

        try netns.run { moves.moveAll() }
        XCTAssertEqual(moves.waiting, 0)
        XCTAssertEqual(try tcxNames(), ["from_endpoint"])
        XCTAssertFalse(try hasFilter())
        XCTAssertEqual(try attached(), try second.id(), "the link runs the latest program")
    }

    func testPostponingHoldsMovesBack() throws {
        guard TC.usesTCX else { throw XCTSkip("this kernel has no tcx (Linux 6.6)") }
        let (_, program) = try program()
        let moves = TCXMoves(links: links, quiet: .seconds(2))
        defer { moves.stop() }
        try attach(program, moves)
        // Three seconds of other work, a request every 100 ms: longer than the quiet period, never quiet.
        for _ in 0..<30 {
            moves.postpone()
            usleep(100_000)
        }
        XCTAssertEqual(moves.waiting, 1)
        XCTAssertEqual(try tcxNames(), [], "no move while the agent is busy")
        let deadline = Date().addingTimeInterval(15)
        while moves.waiting > 0 && Date() < deadline { usleep(50_000) }
        XCTAssertEqual(try tcxNames(), ["from_endpoint"], "moved once the agent went quiet")
    }

    func testADetachedHookOrAFilterRemovedBehindTheAgentsBackIsNotMoved() throws {
        guard TC.usesTCX else { throw XCTSkip("this kernel has no tcx (Linux 6.6)") }
        let (_, program) = try program()
        let moves = TCXMoves(links: links, quiet: .seconds(3600))
        defer { moves.stop() }
        let index = ifindex

        try attach(program, moves)
        try netns.run { moves.detach(ifindex: index) }
        XCTAssertEqual(moves.waiting, 0, "a detached hook has no move left")
        XCTAssertFalse(try hasFilter())
        XCTAssertNil(try attached())

        // The filter goes, then the move comes: the hook is left as found.
        try attach(program, moves)
        XCTAssertEqual(moves.waiting, 1)
        let tc = URL(fileURLWithPath: "/usr/sbin/tc")
        try Process.run(tc, arguments: ["-n", netns.name, "filter", "del", "dev", interface, "ingress"])
            .waitUntilExit()
        XCTAssertFalse(try hasFilter())
        try netns.run { moves.moveAll() }
        XCTAssertEqual(moves.waiting, 0)
        XCTAssertEqual(try tcxNames(), [], "no link for a hook whose filter is no longer ours")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(links)/\(index)_ingress"))
    }
}
