import AgentAPI
import Foundation
import XCTest

/// `nodeagent cleanup`: quiet when there is nothing to remove.
final class CleanupTests: EndToEndTestCase {
    /// Runs `nodeagent cleanup` in the node namespace of `agent`'s topology with these locations.
    private func cleanup(
        _ agent: AgentProcess, stateDir: String? = nil, bpfRoot: String? = nil, extra: [String] = []
    ) throws -> CommandResult {
        try Shell.capture(
            ["nsenter", "--net=\(Netns.path(agent.nodeNetns))", agent.binary, "cleanup", "--socket", agent.socketPath,
             "--state-dir", stateDir ?? agent.stateDirectory, "--bpf-root", bpfRoot ?? agent.bpfRoot] + extra,
            timeout: 30)
    }

    func testCleanupOfANodeWithoutEndpointsPrintsNoLibbpfNoise() throws {
        let topology = try makeTopology()
        // Interfaces without a clsact qdisc: lo, and a pod's veth that never became an endpoint.
        try topology.addPod(namespace: "web-tier", name: "a")
        guard AgentProcess.locate("nodeagent") != nil else { throw XCTSkip("nodeagent binary not built") }
        let agent = try AgentProcess(topology: topology, start: false)

        let result = try cleanup(agent)
        XCTAssertEqual(result.status, 0, "\(result)")
        let noise = result.stderr.split(separator: "\n").filter { $0.contains("libbpf") || $0.contains("Qdisc") }
        XCTAssertEqual(noise, [], "stderr:\n\(result.stderr)")
        XCTAssertTrue(result.stdout.contains("removed 0 tc programs"), result.stdout)
    }
}
