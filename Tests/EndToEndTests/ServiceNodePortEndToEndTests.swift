import AgentAPI
import Foundation
import Glibc
import XCTest

/// A NodePort service through the daemon, with NAT off: `services.devices` names the node's link to a host outside
/// the cluster (which has no route to pods), the agent attaches the netdev programs there, and the host reaches the
/// service's backend pods at the node's address and node port, answered from that address.
final class ServiceNodePortEndToEndTests: EndToEndTestCase {
    func testANodePortServiceIsReachableFromOutsideOnTheConfiguredDevice() throws {
        let topology = try makeTopology()
        try XCTSkipIf((try? Shell.executablePath("python3")) == nil, "the service servers and clients need python3")
        let traffic = try ServiceTraffic(topology: topology)
        let world = try topology.addExternalHost(ipv4: "198.51.100.20", routeToPods: false)
        let backends = try (1...2).map { try topology.addPod(namespace: "shop", name: "web-\($0)", dualStack: false) }
        for backend in backends { try traffic.startServer(on: backend, port: 8080, in: topology) }
        let config = "\(Topology.temporaryDirectory)/na\(topology.tag)-devices.json"
        try JSON.object(["services": ["devices": .array([.string(world.hostInterface)])]]).serialized().write(
            toFile: config, atomically: true, encoding: .utf8)
        topology.onDestroy { try? FileManager.default.removeItem(atPath: config) }
        let agent = try startAgent(in: topology, configFile: config)
        for (index, backend) in backends.enumerated() {
            _ = try agent.registerEndpoint(id: 10 + index, pod: backend, labels: ["k8s:app=web"])
        }
        let spec: JSON = [
            "frontend-address": ["ip": .string(world.nodeIPv4), "port": 30080, "protocol": "TCP"],
            "backend-addresses": .array(backends.map { ["ip": .string($0.ipv4), "port": 8080] }),
            "flags": ["type": "NodePort", "name": "web", "namespace": "shop"],
        ]
        let answer = try agent.api(.PUT, "/v1/service/1", spec)
        XCTAssertEqual(answer.status, 201, "\(answer)")

        let outside = try traffic.client(
            "tcp", from: world, to: world.nodeIPv4, port: 30080, count: 20, agent: agent, outsideCgroup: true)
        XCTAssertEqual(outside["errors"]?.arrayValue, [], "\(outside)")
        XCTAssertEqual(
            Set((outside["names"]?.objectValue ?? [:]).keys), Set(backends.map(\.name)), "both backends: \(outside)")
        XCTAssertEqual(outside["peers"], .array([.string("\(world.nodeIPv4):30080")]), "\(outside)")

        let health = try agent.getJSON("/v1/healthz")
        XCTAssertEqual(health["services"]?["devices"], .array([.string(world.hostInterface)]), "\(health)")
        let status = try agent.nodectl("status")
        let line = status.stdout.split(separator: "\n").first { $0.hasPrefix("Service devices:") }
        XCTAssertEqual(line?.split(separator: " ").last.map(String.init), world.hostInterface, status.stdout)
    }
}
