import AgentAPI
import Foundation
import Glibc
import XCTest

@testable import DatapathCore

/// State files are written without following links, and cleanup recognises the directories that are the agent's.
final class StateFileTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "na-statefile-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func contents(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    func testALinkPlantedAtTheTemporaryPathIsNotFollowed() throws {
        let victim = "\(directory)/victim"
        try "precious".write(toFile: victim, atomically: false, encoding: .utf8)
        let store = try StateStore(directory: "\(directory)/state")
        let path = store.path("policy")
        XCTAssertEqual(symlink(victim, "\(path).tmp"), 0)

        try store.write("policy", ["revision": 1])

        XCTAssertEqual(contents(victim), "precious", "the link's target is untouched")
        var info = stat()
        XCTAssertEqual(lstat(path, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFREG, "the document is a file of its own, not the link")
        XCTAssertEqual(try store.read("policy"), ["revision": 1])
        XCTAssertNotEqual(lstat("\(path).tmp", &info), 0, "no temporary file is left")
    }

    func testATemporaryFileACrashLeftIsReplaced() throws {
        let path = "\(directory)/doc.json"
        try "torn".write(toFile: "\(path).tmp", atomically: false, encoding: .utf8)
        try DurableFile.replace(path, with: Array("whole".utf8))
        XCTAssertEqual(contents(path), "whole")
    }

    func testALinkedStateFileIsNotRead() throws {
        let victim = "\(directory)/victim.json"
        try #"{"a":1}"#.write(toFile: victim, atomically: false, encoding: .utf8)
        XCTAssertEqual(symlink(victim, "\(directory)/config.json"), 0)
        let store = try StateStore(directory: directory)
        XCTAssertThrowsError(try store.read("config"))
    }

    func testOnlyTheAgentsDirectoriesMayBeCleanedUp() throws {
        XCTAssertEqual(Ownership.refusal(stateDirectory: "/"), "is the root directory")
        XCTAssertEqual(Ownership.refusal(stateDirectory: "/tmp/../"), "is the root directory")
        XCTAssertEqual(Ownership.refusal(bpfRoot: "/"), "is the root directory")
        XCTAssertNotNil(Ownership.refusal(bpfRoot: "/sys/fs/bpf"))
        XCTAssertEqual(Ownership.refusal(stateDirectory: "relative/dir"), "is not an absolute path")
        XCTAssertNil(Ownership.refusal(stateDirectory: "\(directory)/missing"), "nothing to remove")

        // Unmarked: only the agent's own layout is recognised.
        let state = "\(directory)/state"
        try FileManager.default.createDirectory(atPath: "\(state)/endpoints", withIntermediateDirectories: true)
        for name in ["policy.json", "config.json.tmp"] {
            try "{}".write(toFile: "\(state)/\(name)", atomically: false, encoding: .utf8)
        }
        XCTAssertNil(Ownership.refusal(stateDirectory: state), "an installation from before markers")
        try "x".write(toFile: "\(state)/notes.txt", atomically: false, encoding: .utf8)
        let refusal = try XCTUnwrap(Ownership.refusal(stateDirectory: state))
        XCTAssertTrue(refusal.contains("notes.txt") && refusal.contains(Ownership.markerName), refusal)

        // Marked: the agent's, whatever else it holds.
        try Ownership.markStateDirectory(state)
        XCTAssertNil(Ownership.refusal(stateDirectory: state))
        try Ownership.markStateDirectory(state)  // again: nothing changes

        // A bpf root's marker is a directory, and unmarked roots may hold only the agent's pins.
        let pins = "\(directory)/pins"
        try FileManager.default.createDirectory(atPath: pins, withIntermediateDirectories: true)
        try "".write(toFile: "\(pins)/na_ct", atomically: false, encoding: .utf8)
        XCTAssertNil(Ownership.refusal(bpfRoot: pins))
        try "".write(toFile: "\(pins)/cilium_ct4_global", atomically: false, encoding: .utf8)
        XCTAssertNotNil(Ownership.refusal(bpfRoot: pins))
        try Ownership.markBPFRoot(pins)
        XCTAssertNil(Ownership.refusal(bpfRoot: pins))

        XCTAssertEqual(symlink(state, "\(directory)/link"), 0)
        XCTAssertEqual(Ownership.refusal(stateDirectory: "\(directory)/link"), "is a symbolic link")
    }
}
