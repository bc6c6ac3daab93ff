import AgentAPI
import Foundation
import XCTest

/// Policy revocation reaches established connections: removing the allow a connection was opened under cuts it
/// (whether the client's egress or the server's ingress allowed it), while a change that leaves its allow in
/// place does not; and only endpoints whose policy changed get a new policy generation in the datapath.
final class RevocationTests: EndToEndTestCase {
    struct Lab {
        var topology: Topology
        var agent: AgentProcess
        var a: Pod
        var b: Pod
        var c: Pod
    }

    let aToB = networkPolicy(
        "lab", "a-to-b",
        spec: [
            "endpointSelector": ["matchLabels": ["app": "a"]],
            "egress": [["toEndpoints": [["matchLabels": ["app": "b"]]], "toPorts": ports(8080)]],
        ])
    let bFromA = networkPolicy(
        "lab", "b-from-a",
        spec: [
            "endpointSelector": ["matchLabels": ["app": "b"]],
            "ingress": [["fromEndpoints": [["matchLabels": ["app": "a"]]], "toPorts": ports(8080)]],
        ])

    /// a and b in `lab` under default deny, a allowed to b:8080 on both sides; c in `other`.
    func makeLab() throws -> Lab {
        let topology = try makeTopology()
        let a = try topology.addPod(namespace: "lab", name: "a", dualStack: false)
        let b = try topology.addPod(namespace: "lab", name: "b", dualStack: false)
        let c = try topology.addPod(namespace: "other", name: "c", dualStack: false)
        _ = try TCPServer(on: b, port: 8080, in: topology)
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: a, labels: ["k8s:app=a"])
        try agent.registerEndpoint(id: 2, pod: b, labels: ["k8s:app=b"])
        try agent.registerEndpoint(id: 3, pod: c, labels: ["k8s:app=c"])
        try agent.importPolicies(SeedPolicyJSON.defaultDeny(["lab"]) + [aToB, bFromA])
        return Lab(topology: topology, agent: agent, a: a, b: b, c: c)
    }

    /// Deletes one policy document and waits until every endpoint has the new revision.
    func deletePolicy(_ agent: AgentProcess, _ name: String) throws {
        let result = try agent.api(.DELETE, "/v1/policy?namespace=lab&name=\(name)")
        guard result.status == 200 else { throw AgentHarnessError("DELETE policy \(name): \(result)") }
        try agent.waitForPolicyRevision()
    }

    /// Endpoint id → the policy generation in its na_endpoints row.
    func generations(_ agent: AgentProcess) throws -> [Int64: Int64] {
        var result: [Int64: Int64] = [:]
        for entry in try agent.mapEntries("na_endpoints") {
            if let id = entry["value"]?["endpoint-id"]?.intValue,
                let generation = entry["value"]?["policy-revision"]?.intValue
            {
                result[id] = generation
            }
        }
        return result
    }

    /// Exchanges until one fails; the time from `start` to the failed exchange's send, or nil if all succeeded.
    func timeToCut(_ connection: OpenConnection, since start: Date, attempts: Int = 5) -> TimeInterval? {
        for _ in 0..<attempts {
            let sent = Date()
            if !connection.exchange(timeout: 0.5) { return sent.timeIntervalSince(start) }
        }
        return nil
    }

    func testRemovingTheClientsEgressAllowCutsTheOpenConnection() throws {
        let lab = try makeLab()
        let cut = try OpenConnection(from: lab.a, to: lab.b, port: 8080)
        defer { cut.close() }
        XCTAssertTrue(cut.exchange(), "data flows both ways before")

        // The server still admits a, but a's own egress no longer allows b.
        let start = Date()
        try deletePolicy(lab.agent, "a-to-b")
        let elapsed = try XCTUnwrap(timeToCut(cut, since: start), "the connection is still open after the revocation")
        XCTAssertLessThan(elapsed, 1, "cut within a second of the request")
        XCTAssertFalse(cut.exchange(), "and stays cut")

        let flows = try lab.agent.waitForFlows {
            $0.contains { $0["verdict"] == "DROPPED" && $0["direction"] == "egress" && $0["reason-code"] == 133 }
        }
        XCTAssertTrue(
            flows.contains {
                $0["verdict"] == "DROPPED" && $0["direction"] == "egress" && $0["reason-code"] == 133
                    && $0["destination"]?["port"] == 8080
            }, "the drop of the established flow is reported as a policy drop: \(flows.suffix(5))")
        assertReachability([Probe(from: lab.a, to: lab.b, port: 8080, .dropped)], "new connections too")
    }

    func testRemovingTheServersIngressAllowCutsTheOpenConnection() throws {
        let lab = try makeLab()
        let cut = try OpenConnection(from: lab.a, to: lab.b, port: 8080)
        defer { cut.close() }
        XCTAssertTrue(cut.exchange(), "data flows both ways before")

        let start = Date()
        try deletePolicy(lab.agent, "b-from-a")
        let elapsed = try XCTUnwrap(timeToCut(cut, since: start), "the connection is still open after the revocation")
        XCTAssertLessThan(elapsed, 1, "cut within a second of the request")
        XCTAssertFalse(cut.exchange(), "and stays cut")
        let flows = try lab.agent.waitForFlows {
            $0.contains { $0["verdict"] == "DROPPED" && $0["reason-code"] == 133 && $0["endpoint"] == 2 }
        }
        XCTAssertTrue(
            flows.contains { $0["verdict"] == "DROPPED" && $0["reason-code"] == 133 }, "\(flows.suffix(5))")
    }

    func testUnrelatedChangesKeepTheConnectionAndMoveOnlyTheChangedEndpointsGeneration() throws {
        let lab = try makeLab()
        let kept = try OpenConnection(from: lab.a, to: lab.b, port: 8080)
        defer { kept.close() }
        XCTAssertTrue(kept.exchange(), "data flows both ways before")
        let initial = try generations(lab.agent)
        XCTAssertEqual(Set(initial.keys), [1, 2, 3])

        // Another namespace's policy: only c's policy map changes.
        try lab.agent.importPolicies(SeedPolicyJSON.defaultDeny(["other"]))
        let afterOther = try generations(lab.agent)
        XCTAssertEqual(afterOther[1], initial[1], "a's policy did not change")
        XCTAssertEqual(afterOther[2], initial[2], "b's policy did not change")
        XCTAssertGreaterThan(afterOther[3] ?? 0, initial[3] ?? 0, "c's did")
        XCTAssertTrue(kept.exchange(), "after a policy for another namespace")

        // A new allow on the server for another port: b's map gains an allow entry, which refuses nothing, so no
        // generation moves and established flows are not re-checked.
        try lab.agent.importPolicies([
            networkPolicy(
                "lab", "b-debug",
                spec: [
                    "endpointSelector": ["matchLabels": ["app": "b"]],
                    "ingress": [["fromEndpoints": [["matchLabels": ["app": "a"]]], "toPorts": ports(9090)]],
                ])
        ])
        let afterDebug = try generations(lab.agent)
        XCTAssertEqual(afterDebug, afterOther, "an added allow moves no generation")
        XCTAssertTrue(kept.exchange(), "after an allow added to the server's own policy map")

        // The same allow removed: b's map loses an entry, its generation moves, and the connection is re-checked and
        // still allowed.
        try deletePolicy(lab.agent, "b-debug")
        let afterRemoval = try generations(lab.agent)
        XCTAssertEqual(afterRemoval[1], afterDebug[1], "a's policy did not change")
        XCTAssertGreaterThan(afterRemoval[2] ?? 0, afterDebug[2] ?? 0, "b's did")
        XCTAssertEqual(afterRemoval[3], afterDebug[3])
        XCTAssertTrue(kept.exchange(), "after a removal from the server's own policy map (re-checked, still allowed)")
        XCTAssertTrue(kept.exchange(), "and after")

        // Nothing in policy changes: no generation moves.
        try lab.agent.setConfig(["log-level": "debug"])
        XCTAssertEqual(try generations(lab.agent), afterRemoval)
        XCTAssertTrue(kept.exchange(), "after a config change")
    }
}
