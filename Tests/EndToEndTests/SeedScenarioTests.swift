import AgentAPI
import Foundation
import XCTest

/// The seed article's three-tier scenario with real traffic: frontend (web-tier) may reach backend-api (api-tier)
/// on TCP 8080 only, backend-api may reach postgres (data-tier) on TCP 5432 only, everything else is denied by
/// the per-namespace default-deny policies. The policies are the article's YAML files, imported unchanged.
final class SeedScenarioTests: EndToEndTestCase {
    /// The pods of the scenario, registered as endpoints of a running agent, with echo servers listening.
    private struct Scenario {
        var agent: AgentProcess
        var pods: SeedPods

        var frontend: Pod { pods.frontend }
        var webOther: Pod { pods.webOther }
        var backend: Pod { pods.backend }
        var postgres: Pod { pods.postgres }
        var adminTool: Pod { pods.adminTool }
    }

    private func makeScenario() throws -> Scenario {
        let topology = try makeTopology()
        let pods = SeedPods(
            frontend: try topology.addPod(namespace: "web-tier", name: "frontend", dualStack: false),
            webOther: try topology.addPod(namespace: "web-tier", name: "web-other", dualStack: false),
            backend: try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false),
            postgres: try topology.addPod(namespace: "data-tier", name: "postgres", dualStack: false),
            adminTool: try topology.addPod(namespace: "api-tier", name: "admin-tool", dualStack: false))
        for (pod, port) in pods.servers { _ = try TCPServer(on: pod, port: port, in: topology) }

        let agent = try startAgent(in: topology)
        let order = [pods.frontend, pods.webOther, pods.backend, pods.postgres, pods.adminTool]
        for (index, pod) in order.enumerated() {
            let endpoint = try agent.registerEndpoint(id: index + 1, pod: pod, labels: SeedPods.labels[pod.name]!)
            XCTAssertEqual(
                endpoint["interface-index"]?.intValue, Int64(pod.hostIfindex), "\(pod) endpoint: \(endpoint)")
        }
        return Scenario(agent: agent, pods: pods)
    }

    private func importPolicy(
        _ fixtureName: String, into agent: AgentProcess, file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        let result = try agent.nodectl("policy", "import", try fixture(fixtureName))
        XCTAssertEqual(
            result.status, 0, "nodectl policy import \(fixtureName): \(result.stderr)", file: file, line: line)
        try agent.waitForPolicyRevision()
    }

    func testWithoutPolicyEverythingConnects() throws {
        let s = try makeScenario()
        assertReachability(
            [
                Probe(from: s.frontend, to: s.backend, port: 8080, .passes),
                Probe(from: s.frontend, to: s.backend, port: 9090, .passes),
                Probe(from: s.frontend, to: s.postgres, port: 5432, .passes),
                Probe(from: s.webOther, to: s.backend, port: 8080, .passes),
                Probe(from: s.postgres, to: s.backend, port: 8080, .passes),
                Probe(from: s.backend, to: s.postgres, port: 5433, .passes),
                Probe(from: s.adminTool, to: s.backend, port: 8080, .passes),
                Probe(from: s.backend, to: s.frontend, port: 80, .passes),
            ], "no policy: nothing is enforced")
    }

    func testSeedPoliciesEnforceTheReachabilityMatrix() throws {
        let s = try makeScenario()

        try importPolicy("default-deny-all.yaml", into: s.agent)
        assertReachability(
            [
                Probe(from: s.frontend, to: s.backend, port: 8080, .dropped),
                Probe(from: s.backend, to: s.postgres, port: 5432, .dropped),
            ], "default deny only")

        try importPolicy("allow-traffic-policy.yaml", into: s.agent)
        let seedMatrix = s.pods.enforcedMatrix
        assertReachability(seedMatrix, "seed policies")

        let delete = try s.agent.nodectl(
            "policy", "delete", "--namespace", "web-tier", "--name", "allow-frontend-to-backend")
        XCTAssertEqual(delete.status, 0, "nodectl policy delete: \(delete.stderr)")
        try s.agent.waitForPolicyRevision()
        assertReachability(
            [
                Probe(from: s.frontend, to: s.backend, port: 8080, .dropped),
                Probe(from: s.backend, to: s.postgres, port: 5432, .passes),
            ], "after deleting web-tier/allow-frontend-to-backend")

        try importPolicy("allow-traffic-policy.yaml", into: s.agent)
        assertReachability(seedMatrix, "after importing allow-traffic-policy.yaml again")
    }
}
