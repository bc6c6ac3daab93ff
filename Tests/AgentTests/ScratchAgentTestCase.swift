import DatapathCore
import Foundation
import XCTest

@testable import Agent

/// A test that runs a real agent in places of its own: a bpf root and a state directory named by a random tag, and
/// the scratch network namespace its endpoints live in. All of them are removed after each test, and a bpf root
/// left behind fails it.
class ScratchAgentTestCase: XCTestCase {
    var tag = ""
    var bpfRoot = ""
    var stateDir = ""
    var scratch: ScratchNetns?

    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "loading the datapath and pinning maps needs root")
        tag = String(format: "%08x", UInt32.random(in: 0...UInt32.max))
        bpfRoot = "/sys/fs/bpf/na-test-\(tag)"
        stateDir = "/tmp/na-agenttests-\(tag)"
    }

    /// An agent configuration that keeps the agent's pins, state and socket in this test's places.
    var agentConfig: AgentConfig {
        var config = AgentConfig()
        config.bpfRoot = bpfRoot
        config.stateDir = stateDir
        config.socketPath = "\(stateDir)/agent.sock"
        return config
    }

    override func tearDown() {
        scratch?.destroy()
        scratch = nil
        if !bpfRoot.isEmpty { BPFFS.removeAll(root: bpfRoot) }
        if !stateDir.isEmpty { try? FileManager.default.removeItem(atPath: stateDir) }
        XCTAssertFalse(!bpfRoot.isEmpty && FileManager.default.fileExists(atPath: bpfRoot), "\(bpfRoot) left behind")
    }
}
