import DatapathCore
import Foundation
import Glibc
import XCTest

/// Tests of how programs attach to the tc hooks of `interface`: one end of a veth pair in a network namespace of
/// its own, with a bpffs directory for pins, and what `tc` shows there and the tcx list holds.
class TCHookTestCase: XCTestCase {
    /// Names the namespace, the pin directory and (with a 0 and a 1) the two interfaces.
    class var tag: String { "tch" }

    private(set) var netns: ScratchNetns!
    private(set) var ifindex: Int32 = 0
    private(set) var pins = ""
    var interface: String { "\(Self.tag)0" }

    override func setUpWithError() throws {
        netns = try ScratchNetns(name: "na-\(Self.tag)-\(getpid())")
        pins = "/sys/fs/bpf/na-\(Self.tag)-\(getpid())"
        try FileManager.default.createDirectory(atPath: pins, withIntermediateDirectories: true)
        try netns.addVethPair(interface, "\(Self.tag)1")
        let name = interface
        ifindex = try netns.run { Int32(if_nametoindex(name)) }
        XCTAssertGreaterThan(ifindex, 0)
    }

    override func tearDown() {
        netns?.destroy()
        netns = nil
        try? FileManager.default.removeItem(atPath: pins)
    }

    /// The endpoint object with small maps, unpinned.
    func load() throws -> BPFObject {
        try BPFObject.load(
            embedded: "endpoint", pinDirectory: nil,
            maxEntries: ["na_ct": 4096, "na_lb_flows": 4096, "na_ipcache": 64, "na_endpoints": 8, "na_policy": 8])
    }

    /// What `tc filter show` prints for the interface's ingress hook.
    func filters() throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/tc")
        process.arguments = ["-n", netns.name, "filter", "show", "dev", interface, "ingress"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return text
    }

    /// The names of the programs in the ingress hook's tcx list.
    func tcxNames() throws -> [String] {
        let index = ifindex
        return try netns.run { try TC.tcxProgramNames(ifindex: index, point: .ingress) }
    }

    /// The id of our program on the ingress hook, with tcx links pinned in `links`.
    func attached(_ links: String) throws -> UInt32? {
        let index = ifindex
        return try netns.run { TC.attachedProgramID(ifindex: index, point: .ingress, links: links) }
    }
}
