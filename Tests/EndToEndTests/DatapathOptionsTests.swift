import AgentAPI
import Foundation
import XCTest

/// The runtime options the datapath applies per packet: `drop-event-interval` (drop events aggregated per flow in
/// the kernel, counters exact) and `allow-localhost` (the node's own traffic to its pods and ingress policy).
final class DatapathOptionsTests: EndToEndTestCase {
    private func naConfig(_ agent: AgentProcess) throws -> JSON {
        try XCTUnwrap(try agent.mapEntries("na_config").first?["value"])
    }

    func testOptionsAreValidatedShownPersistedAndWrittenToTheDatapath() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        let initial = try agent.getJSON("/v1/config")
        XCTAssertEqual(initial["drop-event-interval"], "1s")
        XCTAssertEqual(initial["allow-localhost"], "always")
        XCTAssertEqual(
            try agent.getJSON("/v1/healthz")["datapath"],
            ["drop-event-interval": "1s", "allow-localhost": "always", "host-routing": "bpf"])
        XCTAssertEqual(try naConfig(agent)["drop-event-interval-ms"], 1000)
        XCTAssertEqual(try naConfig(agent)["localhost-policy"], false)

        for bad: JSON in ["fast", "1x", "-1s", "2h", -1, 3601, 1.5, true, "", "ms"] {
            assertAPIError(
                try agent.api(.PATCH, "/v1/config", ["drop-event-interval": bad]), status: 400, code: "invalid-field",
                field: "drop-event-interval", "\(bad.serialized())")
        }
        for bad: JSON in ["sometimes", 1, "ALWAYS"] {
            assertAPIError(
                try agent.api(.PATCH, "/v1/config", ["allow-localhost": bad]), status: 400, code: "invalid-field",
                field: "allow-localhost", "\(bad.serialized())")
        }
        assertAPIError(
            try agent.api(.PATCH, "/v1/config", ["drop-event-interval": "5s", "allow-localhost": "nope"]), status: 400,
            code: "invalid-field", field: "allow-localhost", "one bad value in the patch")
        XCTAssertEqual(try agent.getJSON("/v1/config"), initial, "rejected patches change nothing")

        let set = try agent.nodectl(
            "-o", "json", "config", "set", "drop-event-interval=1m30s", "allow-localhost=policy")
        XCTAssertEqual(set.status, 0, set.stderr)
        XCTAssertEqual(try JSON.parse(set.stdout)["drop-event-interval"], "90s")
        for (given, shown, ms): (JSON, JSON, Int64) in [
            ("250ms", "250ms", 250), (0, "0s", 0), (2, "2s", 2000), ("1h", "3600s", 3_600_000),
        ] {
            let patched = try agent.api(.PATCH, "/v1/config", ["drop-event-interval": given])
            XCTAssertEqual(patched.json?["drop-event-interval"], shown, "\(given.serialized()): \(patched)")
            XCTAssertEqual(try naConfig(agent)["drop-event-interval-ms"], .int(ms))
        }
        XCTAssertEqual(try naConfig(agent)["localhost-policy"], true)
        XCTAssertEqual(
            try agent.getJSON("/v1/healthz")["datapath"],
            ["drop-event-interval": "3600s", "allow-localhost": "policy", "host-routing": "bpf"])

        XCTAssertEqual(agent.stop(), .exited(0))
        try agent.start()
        XCTAssertEqual(try agent.getJSON("/v1/config")["drop-event-interval"], "3600s", "persisted")
        XCTAssertEqual(try agent.getJSON("/v1/config")["allow-localhost"], "policy")
        XCTAssertEqual(try naConfig(agent)["drop-event-interval-ms"], 3_600_000, "written again on start")
        XCTAssertEqual(try naConfig(agent)["localhost-policy"], true)
    }

    func testAFloodOfDeniedDatagramsGivesBoundedFlowsAndExactCounts() throws {
        let s = try ObservabilityScenario(self)
        let drop = ["reason": "policy denied", "direction": "egress"]
        let before = try s.agent.scrape().value("nodeagent_drop_packets_total", drop) ?? 0
        // One socket: one flow. In batches, so the veth's backlog never overflows before the tc hook counts them.
        let address = try SocketAddress(ip: s.backend.ipv4, port: 5353)
        let fd = try Sockets.make(in: s.frontend.netns, family: address.family, type: SOCK_DGRAM)
        defer { close(fd) }
        XCTAssertEqual(address.withSockaddr { connect(fd, $0, $1) }, 0)
        let batches = 20
        let perBatch = 100
        let started = Date()
        for _ in 0..<batches {
            for _ in 0..<perBatch { XCTAssertEqual(send(fd, "flood", 5, Int32(MSG_NOSIGNAL)), 5) }
            usleep(5000)
        }
        let elapsed = Date().timeIntervalSince(started)
        let count = Double(batches * perBatch)
        _ = try s.agent.waitForMetrics { ($0.value("nodeagent_drop_packets_total", drop) ?? 0) >= before + count }
        usleep(300_000)
        XCTAssertEqual(
            try s.agent.scrape().value("nodeagent_drop_packets_total", drop), before + count, "every drop counted")
        let flows = try s.agent.flows("protocol=UDP&port=5353&last=10000")
        // One event per started second of the flood (the default interval is 1s).
        XCTAssertGreaterThanOrEqual(flows.count, 1)
        XCTAssertLessThanOrEqual(
            flows.count, Int(elapsed) + 1, "bounded by the interval, over \(elapsed) s: \(flows.count)")
        XCTAssertTrue(flows.allSatisfy { $0["verdict"] == "DROPPED" && $0["reason-code"] == 133 })

        // Distinct flows are each reported.
        for _ in 0..<5 { try sendDatagrams(from: s.frontend, to: s.backend.ipv4, port: 5354, count: 50) }
        let distinct = try s.agent.waitForFlows("protocol=UDP&port=5354&last=10000") { $0.count >= 5 }
        usleep(300_000)
        XCTAssertEqual(
            try s.agent.flows("protocol=UDP&port=5354&last=10000").count, 5, "one per socket: \(distinct.count)")

        // With no interval every drop is reported again.
        try s.agent.setConfig(["drop-event-interval": 0])
        try sendDatagrams(from: s.frontend, to: s.backend.ipv4, port: 5355, count: 30)
        let each = try s.agent.waitForFlows("protocol=UDP&port=5355&last=10000") { $0.count >= 30 }
        XCTAssertEqual(each.count, 30)
    }

    func testTheNodesAddressOnAPodWiredAfterTheAgentStartedIsIdentityHost() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        XCTAssertNil(try agent.ipcache()[hostPrefix(topology.gatewayIPv4)], "no pod, no gateway address yet")
        let pod = try topology.addPod(namespace: "lab", name: "late", dualStack: false)
        _ = try TCPServer(on: pod, port: 8080, in: topology)
        try agent.registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=late"])
        try agent.importPolicies(SeedPolicyJSON.defaultDeny(["lab"]))
        XCTAssertEqual(try agent.ipcache()[hostPrefix(topology.gatewayIPv4)], 1)
        XCTAssertTrue(try tcpConnect(from: topology.nodeNetns, to: pod.ipv4, port: 8080).passed)
    }

    func testTheNodeReachesAPodUnderDefaultDenyUnlessAllowLocalhostIsPolicy() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "lab", name: "probed", dualStack: false)
        let other = try topology.addPod(namespace: "lab", name: "other", dualStack: false)
        _ = try TCPServer(on: pod, port: 8080, in: topology)
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=probed"])
        try agent.registerEndpoint(id: 2, pod: other, labels: ["k8s:app=other"])
        try agent.importPolicies(SeedPolicyJSON.defaultDeny(["lab"]))
        // The node reaches the pod from the gateway address on the pod's host veth: one of the node's addresses.
        XCTAssertEqual(try agent.ipcache()[hostPrefix(topology.gatewayIPv4)], 1, "the node's address is identity host")

        let node = NodeNamespace(netns: topology.nodeNetns, ipv4: topology.gatewayIPv4)
        let open = try OpenConnection(from: node, to: pod, port: 8080)
        defer { open.close() }
        XCTAssertTrue(open.exchange(), "allow-localhost=always: the node passes the pod's default deny")
        XCTAssertTrue(try tcpConnect(from: topology.nodeNetns, to: pod.ipv4, port: 8080).passed)
        XCTAssertTrue(try tcpConnect(from: other, to: pod, port: 8080).dropped, "other peers still meet the deny")
        let trace = try agent.getJSON("/v1/policy/trace?src=\(topology.gatewayIPv4)&dst=1&dport=8080")
        XCTAssertEqual(trace["verdict"], "allowed", "\(trace)")
        XCTAssertEqual(trace["source"]?["identity"], 1)

        try agent.setConfig(["allow-localhost": "policy"])
        XCTAssertTrue(
            try tcpConnect(from: topology.nodeNetns, to: pod.ipv4, port: 8080).dropped, "now subject to policy")
        XCTAssertFalse(open.exchange(), "and the open connection is re-checked and cut")
        let denied = try agent.getJSON("/v1/policy/trace?src=\(topology.gatewayIPv4)&dst=1&dport=8080")
        XCTAssertEqual(denied["verdict"], "denied", "\(denied)")
        let flows = try agent.waitForFlows {
            $0.contains { $0["verdict"] == "DROPPED" && $0["source"]?["identity"] == 1 && $0["direction"] == "ingress" }
        }
        XCTAssertTrue(
            flows.contains { $0["verdict"] == "DROPPED" && $0["source"]?["identity"] == 1 }, "\(flows.suffix(3))")

        // A policy admitting the host admits it again.
        try agent.importPolicies([
            networkPolicy(
                "lab", "probes",
                spec: [
                    "endpointSelector": ["matchLabels": ["app": "probed"]],
                    "ingress": [["fromEntities": ["host"], "toPorts": ports(8080)]],
                ])
        ])
        XCTAssertTrue(try tcpConnect(from: topology.nodeNetns, to: pod.ipv4, port: 8080).passed, "allowed by policy")
        try agent.setConfig(["allow-localhost": "always"])
        XCTAssertTrue(try tcpConnect(from: topology.nodeNetns, to: pod.ipv4, port: 8080).passed)
    }
}

/// The node namespace as a traffic source.
private struct NodeNamespace: NetworkHost {
    var netns: String
    var ipv4: String
    var ipv6: String? = nil
}
