import Foundation
import Glibc
import XCTest

/// Base class for suites that build namespaces: skips when the machine cannot run them, and destroys whatever a
/// test built when it ends, passed or failed.
class EndToEndTestCase: XCTestCase {
    /// Skips unless running as root with `ip` and `nsenter` available.
    func requireNetworkPrivileges() throws {
        try XCTSkipUnless(getuid() == 0, "end-to-end tests create network namespaces and need root")
        for tool in ["ip", "nsenter", "curl"] {
            try XCTSkipIf((try? Shell.executablePath(tool)) == nil, "end-to-end tests need `\(tool)` in PATH")
        }
    }

    /// A new topology that is destroyed when the test ends; the test fails if anything of it remains then.
    func makeTopology(file: StaticString = #filePath, line: UInt = #line) throws -> Topology {
        try requireNetworkPrivileges()
        let topology = try Topology()
        addTeardownBlock {
            let problems = topology.destroy()
            XCTAssertEqual(problems, [], "cleanup of run \(topology.tag) reported problems", file: file, line: line)
            XCTAssertEqual(topology.leftovers(), [], "run \(topology.tag) left things behind", file: file, line: line)
        }
        return topology
    }

    /// Starts the built agent in `topology`'s node namespace, or skips the test when it has not been built.
    func startAgent(in topology: Topology, configFile: String? = nil, extraArguments: [String] = []) throws
        -> AgentProcess
    {
        guard AgentProcess.locate("nodeagent") != nil else {
            throw XCTSkip("nodeagent binary not built (looked in \(AgentProcess.searchDirectories()))")
        }
        return try AgentProcess(topology: topology, configFile: configFile, extraArguments: extraArguments)
    }

    /// The directory of the test fixtures (YAML policies copied from the seed article).
    static let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path

    func fixture(_ name: String) throws -> String {
        let path = "\(EndToEndTestCase.fixturesDirectory)/\(name)"
        guard FileManager.default.fileExists(atPath: path) else { throw AgentHarnessError("missing fixture \(path)") }
        return path
    }
}
