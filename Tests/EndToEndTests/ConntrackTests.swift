import AgentAPI
import Foundation
import XCTest

/// Conntrack entries made by real connections, swept by the GC plugin with short lifetimes, flushed per endpoint.
final class ConntrackTests: EndToEndTestCase {
    private func startAgent(in topology: Topology, gc: JSON) throws -> AgentProcess {
        let config = NSTemporaryDirectory() + "nodeagent-ct-\(topology.tag).json"
        try JSON.object(["plugins": ["conntrack-gc": gc]]).serialized().write(
            toFile: config, atomically: true, encoding: .utf8)
        topology.onDestroy { try? FileManager.default.removeItem(atPath: config) }
        return try startAgent(in: topology, configFile: config)
    }

    private func entries(_ agent: AgentProcess, _ query: String) throws -> [JSON] {
        let result = try agent.api(.GET, "/v1/ct?\(query)")
        XCTAssertEqual(result.status, 200, result.body)
        return result.json?["entries"]?.arrayValue ?? []
    }

    private func waitUntil(timeout: TimeInterval, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.25)
        }
        return try condition()
    }

    func testEntriesAppearAndAreSweptAfterTheirLifetime() throws {
        let topology = try makeTopology()
        let client = try topology.addPod(namespace: "default", name: "client", dualStack: false)
        let server = try topology.addPod(namespace: "default", name: "server", dualStack: false)
        _ = try UDPServer(on: server, port: 5353, in: topology)
        let agent = try startAgent(
            in: topology,
            gc: [
                "non-tcp": 2, "tcp-syn": 2, "tcp-closing": 1, "tcp-established": 3, "interval-min": 1,
                "interval-initial": 1, "interval-max": 2,
            ])
        _ = try agent.registerEndpoint(id: 1, pod: client, labels: ["k8s:app=client"])
        _ = try agent.registerEndpoint(id: 2, pod: server, labels: ["k8s:app=server"])

        XCTAssertTrue(try udpExchange(from: client, to: server, port: 5353).passed)
        let made = try entries(agent, "endpoint=1&protocol=UDP")
        XCTAssertEqual(made.count, 1, "one egress entry for the client: \(made)")
        XCTAssertEqual(made.first?["destination"]?.stringValue, server.ipv4)
        XCTAssertEqual(made.first?["destination-port"]?.intValue, 5353)
        XCTAssertEqual(made.first?["direction"]?.stringValue, "egress")
        XCTAssertEqual(try entries(agent, "endpoint=2&protocol=UDP").count, 1, "one ingress entry for the server")

        let swept = try waitUntil(timeout: 10) { try entries(agent, "protocol=UDP").isEmpty }
        XCTAssertTrue(swept, "entries are gone after their 2 s lifetime and a sweep")
        let health = try agent.api(.GET, "/v1/healthz").json
        let gc = health?["plugins"]?.arrayValue?.first { $0["name"]?.stringValue == "conntrack-gc" }
        XCTAssertGreaterThan(gc?["detail"]?["runs"]?.intValue ?? 0, 0, "\(String(describing: gc))")
    }

    func testFlushOneEndpointLeavesTheOthers() throws {
        let topology = try makeTopology()
        let a = try topology.addPod(namespace: "default", name: "a", dualStack: false)
        let b = try topology.addPod(namespace: "default", name: "b", dualStack: false)
        let server = try topology.addPod(namespace: "default", name: "server", dualStack: false)
        _ = try TCPServer(on: server, port: 7000, in: topology)
        let agent = try startAgent(in: topology, gc: [:])
        _ = try agent.registerEndpoint(id: 1, pod: a, labels: ["k8s:app=a"])
        _ = try agent.registerEndpoint(id: 2, pod: b, labels: ["k8s:app=b"])
        _ = try agent.registerEndpoint(id: 3, pod: server, labels: ["k8s:app=server"])
        XCTAssertTrue(try tcpConnect(from: a, to: server, port: 7000).passed)
        XCTAssertTrue(try tcpConnect(from: b, to: server, port: 7000).passed)
        XCTAssertFalse(try entries(agent, "endpoint=1").isEmpty)
        XCTAssertFalse(try entries(agent, "endpoint=2").isEmpty)

        let flushed = try agent.api(.DELETE, "/v1/ct?endpoint=1")
        XCTAssertEqual(flushed.status, 200, flushed.body)
        XCTAssertGreaterThan(flushed.json?["deleted"]?.intValue ?? 0, 0)
        XCTAssertTrue(try entries(agent, "endpoint=1").isEmpty)
        XCTAssertFalse(try entries(agent, "endpoint=2").isEmpty, "endpoint 2's entries stay")
        XCTAssertFalse(try entries(agent, "endpoint=3").isEmpty, "the server's entries stay")

        // Deleting an endpoint removes its entries at once.
        XCTAssertEqual(try agent.api(.DELETE, "/v1/endpoint/2").status, 200)
        XCTAssertTrue(try entries(agent, "endpoint=2").isEmpty)
        XCTAssertEqual(try agent.nodectl("ct", "list").status, 0)
    }
}
