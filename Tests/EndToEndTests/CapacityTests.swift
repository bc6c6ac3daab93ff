import AgentAPI
import Foundation
import Glibc
import XCTest

/// Full maps: a policy that would not fit an endpoint's policy map is refused whole before anything changes, and a
/// full conntrack table degrades (the LRU evicts) without failing new connections or the agent.
final class CapacityTests: EndToEndTestCase {
    /// A policy selecting `app=cap` that allows TCP ingress from anyone on `ports` distinct ports: one map entry per
    /// port. Ports are two apart so that no entry covers another.
    private func portsPolicy(_ ports: Int) -> JSON {
        let items = stride(from: 0, to: ports, by: 40).map { start -> JSON in
            let chunk = (start..<min(start + 40, ports)).map {
                JSON.object(["port": .string("\(2000 + 2 * $0)"), "protocol": "TCP"])
            }
            return ["toPorts": [["ports": .array(chunk)]]]
        }
        return [
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": ["name": "many-ports", "namespace": "default"],
            "spec": ["endpointSelector": ["matchLabels": ["app": "cap"]], "ingress": .array(items)],
        ]
    }

    func testPolicyAtCapacityFitsAndOneMoreIsRefusedWithNothingChanged() throws {
        let topology = try makeTopology()
        try Shell.run([
            "ip", "-n", topology.nodeNetns, "link", "add", "cap\(topology.tag)", "type", "veth", "peer", "name",
            "cap\(topology.tag)p",
        ])
        let config = "\(Topology.temporaryDirectory)/na\(topology.tag)-config.json"
        try #"{"policy-map-entries": 64}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let agent = try startAgent(in: topology, configFile: config)
        let endpoint = try agent.api(
            .PUT, "/v1/endpoint/1",
            [
                "interface-name": .string("cap\(topology.tag)"), "addressing": ["ipv4": "10.102.0.1"],
                "labels": ["k8s:app=cap", "k8s:io.kubernetes.pod.namespace=default"], "k8s-namespace": "default",
            ])
        XCTAssertEqual(endpoint.status, 201, "\(endpoint)")
        let map = try agent.api(.GET, "/v1/map").json?["maps"]?.arrayValue?.first { $0["name"] == "na_pol_00001" }
        XCTAssertEqual(map?["max-entries"]?.intValue, 64, "the map is created with the configured size")

        let fits = try agent.api(.PUT, "/v1/policy", portsPolicy(64))
        XCTAssertEqual(fits.status, 200, "exactly the capacity fits: \(fits)")
        let realized = try agent.api(.GET, "/v1/endpoint/1/policy")
        XCTAssertEqual(realized.json?["entries"]?.arrayValue?.count, 64)

        let before = try AgentSnapshot.take(socketPath: agent.socketPath)
        let tooMany = try agent.api(.PUT, "/v1/policy", portsPolicy(65))
        XCTAssertEqual(tooMany.status, 507, "\(tooMany)")
        XCTAssertEqual(tooMany.json?["error"]?["code"], "capacity-exceeded")
        let message = tooMany.json?["error"]?["message"]?.stringValue ?? ""
        XCTAssertTrue(message.contains("65") && message.contains("64"), "names the need and the capacity: \(message)")
        XCTAssertEqual(
            try AgentSnapshot.take(socketPath: agent.socketPath).differences(from: before), [], "nothing changed")

        // The refusal left the agent able to change policy as before.
        XCTAssertEqual(try agent.api(.DELETE, "/v1/policy?all=true").status, 200)
        XCTAssertEqual(try agent.api(.GET, "/v1/endpoint/1/policy").json?["entries"]?.arrayValue?.count, 0)
        XCTAssertEqual(try agent.api(.PUT, "/v1/policy", portsPolicy(64)).status, 200)
        XCTAssertEqual(try agent.api(.GET, "/v1/endpoint/1/policy").json?["entries"]?.arrayValue?.count, 64)
    }

    func testFullConntrackTableEvictsAndNewConnectionsStillWork() throws {
        let topology = try makeTopology()
        let client = try topology.addPod(namespace: "web-tier", name: "frontend", dualStack: false)
        let server = try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        _ = try TCPServer(on: server, port: 8080, in: topology)
        let config = "\(Topology.temporaryDirectory)/na\(topology.tag)-config.json"
        try #"{"map-sizes": {"na_ct": 64}}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let agent = try startAgent(in: topology, configFile: config)
        try agent.registerEndpoint(id: 1, pod: client, labels: ["k8s:app=frontend"])
        try agent.registerEndpoint(id: 2, pod: server, labels: ["k8s:app=backend-api"])
        for file in ["default-deny-all.yaml", "allow-traffic-policy.yaml"] {
            XCTAssertEqual(try agent.nodectl("policy", "import", try fixture(file)).status, 0)
        }
        try agent.waitForPolicyRevision()

        // Four times the table's size in new connections, a quarter of them held open meanwhile.
        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        var failures: [String] = []
        for index in 0..<256 {
            let result = try tcpConnect(from: client, to: server, port: 8080)
            if !result.passed { failures.append("connection \(index): \(result)") }
            if index % 4 == 0, let fd = try? openConnection(from: client.netns, to: server.ipv4, port: 8080) {
                held.append(fd)
            }
        }
        XCTAssertEqual(failures, [], "new connections keep working while the table is full")
        let maps = try agent.api(.GET, "/v1/map").json?["maps"]?.arrayValue ?? []
        let ct = maps.first { $0["name"] == "na_ct" }
        XCTAssertEqual(ct?["max-entries"]?.intValue, 64)
        XCTAssertLessThanOrEqual(ct?["entries"]?.intValue ?? 0, 64, "an LRU table never overflows")
        // Drops for a failed conntrack insert are counted under their own reason, whether or not any happened.
        let metrics = try agent.api(.GET, "/v1/map/na_metrics").json?["entries"]?.arrayValue ?? []
        let ctDrops = metrics.filter { $0["key"]?["reason-code"]?.intValue == 155 }
        print(
            "conntrack 64 entries, 256 new connections: \(ctDrops.map { "\($0["value"] ?? nil)" }) drops of reason 155")
        // The agent reports the table's size and fill, and stays healthy.
        let health = try agent.api(.GET, "/v1/healthz")
        XCTAssertEqual(health.status, 200)
        let gc = health.json?["plugins"]?.arrayValue?.first { $0["name"] == "conntrack-gc" }
        XCTAssertEqual(gc?["detail"]?["max-entries"]?.intValue, 64, "healthz: \(health)")
        XCTAssertNotNil(gc?["detail"]?["entries"]?.intValue, "healthz reports the table's entries")
        XCTAssertTrue(agent.isRunning)
    }

    private func openConnection(from netns: String, to ip: String, port: UInt16) throws -> Int32 {
        let address = try SocketAddress(ip: ip, port: port)
        let fd = try Sockets.make(in: netns, family: address.family, type: SOCK_STREAM)
        if address.withSockaddr({ connect(fd, $0, $1) }) != 0 {
            _ = Sockets.wait(fd, for: Int16(POLLOUT), until: Date() + 1)
        }
        return fd
    }
}
