import AgentAPI
import Foundation
import XCTest

/// `nodeagent cleanup`: quiet when there is nothing to remove, and it removes only what is the agent's.
final class CleanupTests: EndToEndTestCase {
    /// Runs `nodeagent cleanup` in the node namespace of `agent`'s topology with these locations.
    private func cleanup(
        _ agent: AgentProcess, stateDir: String? = nil, bpfRoot: String? = nil, extra: [String] = []
    ) throws -> CommandResult {
        try Shell.capture(
            [
                "nsenter", "--net=\(Netns.path(agent.nodeNetns))", agent.binary, "cleanup", "--socket",
                agent.socketPath,
                "--state-dir", stateDir ?? agent.stateDirectory, "--bpf-root", bpfRoot ?? agent.bpfRoot,
            ] + extra,
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

    func testCleanupRefusesTheRootDirectoryAndForeignDirectoriesAndRemovesNothing() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "web-tier", name: "a")
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=a"])
        agent.stop()
        let pins = try FileManager.default.contentsOfDirectory(atPath: agent.bpfRoot)
        XCTAssertTrue(pins.contains("na_endpoints"), "\(pins)")

        let foreign = "\(Topology.temporaryDirectory)/na\(topology.tag)-foreign"
        try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
        topology.onDestroy { try? FileManager.default.removeItem(atPath: foreign) }
        try "keep".write(toFile: "\(foreign)/keep.txt", atomically: false, encoding: .utf8)

        let refused = try cleanup(agent, stateDir: foreign)
        XCTAssertNotEqual(refused.status, 0, "\(refused)")
        XCTAssertTrue(refused.stderr.contains("refusing to clean up, nothing was removed"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("state directory \(foreign) has no"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("keep.txt"), refused.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(foreign)/keep.txt"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: agent.bpfRoot).sorted(), pins.sorted())
        XCTAssertTrue(
            try TCFilters.hasProgram("from_endpoint", on: pod.hostInterface, "ingress", in: topology.nodeNetns))

        // The root directory is refused whatever it holds. Run as nobody, so that even a broken check could
        // remove nothing of the machine.
        let root = try Shell.capture(
            [
                "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", agent.binary, "cleanup", "--state-dir",
                "/",
                "--bpf-root", "\(Topology.temporaryDirectory)/na\(topology.tag)-nothing", "--socket",
                "\(Topology.temporaryDirectory)/na\(topology.tag)-nothing.sock",
            ], timeout: 30)
        XCTAssertNotEqual(root.status, 0, "\(root)")
        XCTAssertTrue(root.stderr.contains("state directory / is the root directory"), root.stderr)

        // The agent's own directories are cleaned up.
        let cleaned = try cleanup(agent)
        XCTAssertEqual(cleaned.status, 0, "\(cleaned)")
        XCTAssertTrue(
            cleaned.stdout.contains("removed 2 tc programs, \(pins.count - 1) pinned objects"), cleaned.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: agent.bpfRoot))
        XCTAssertFalse(FileManager.default.fileExists(atPath: agent.stateDirectory))
        XCTAssertFalse(
            try TCFilters.hasProgram("from_endpoint", on: pod.hostInterface, "ingress", in: topology.nodeNetns))
    }
}
