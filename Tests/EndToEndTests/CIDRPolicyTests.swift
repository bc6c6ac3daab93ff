import AgentAPI
import Foundation
import XCTest

/// CIDR and entity policies with real traffic to namespaces standing in for hosts outside the cluster.
final class CIDRPolicyTests: EndToEndTestCase {
    private struct World {
        var topology: Topology
        var agent: AgentProcess
        var backend: Pod
        var metadata: ExternalHost  // 169.254.169.254, allowed by the seed policy
        var monitoring: ExternalHost  // 198.51.100.10, allowed by the seed policy
        var other: ExternalHost  // 198.51.100.20, not allowed
    }

    private func makeWorld() throws -> World {
        let topology = try makeTopology()
        let backend = try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        let metadata = try topology.addExternalHost(ipv4: "169.254.169.254")
        let monitoring = try topology.addExternalHost(ipv4: "198.51.100.10")
        let other = try topology.addExternalHost(ipv4: "198.51.100.20")
        for host in [metadata, monitoring, other] {
            _ = try TCPServer(on: host, port: 80, in: topology)
        }
        let agent = try startAgent(in: topology)
        _ = try agent.registerEndpoint(id: 1, pod: backend, labels: ["k8s:app=backend-api"])
        return World(
            topology: topology, agent: agent, backend: backend, metadata: metadata, monitoring: monitoring,
            other: other)
    }

    private func importPolicy(_ fixtureName: String, into agent: AgentProcess) throws {
        let result = try agent.nodectl("policy", "import", try fixture(fixtureName))
        XCTAssertEqual(result.status, 0, "nodectl policy import \(fixtureName): \(result.stderr)")
        try agent.waitForPolicyRevision()
    }

    private func putPolicy(_ document: JSON, into agent: AgentProcess) throws {
        let result = try agent.api(.PUT, "/v1/policy", document)
        XCTAssertEqual(result.status, 200, "PUT /v1/policy: \(result.body)")
        try agent.waitForPolicyRevision()
    }

    /// Prefixes the ipcache holds with a CIDR identity (≥ 1<<24).
    private func cidrPrefixes(_ agent: AgentProcess) throws -> [String: Int64] {
        let dump = try agent.api(.GET, "/v1/map/na_ipcache?limit=10000")
        var result: [String: Int64] = [:]
        for entry in dump.json?["entries"]?.arrayValue ?? [] {
            guard let prefix = entry["key"]?["prefix"]?.stringValue, let id = entry["value"]?["identity"]?.intValue,
                id >= 1 << 24
            else { continue }
            result[prefix] = id
        }
        return result
    }

    private static func egressPolicy(_ name: String, _ egress: JSON) -> JSON {
        [
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": ["name": .string(name), "namespace": "api-tier"],
            "spec": ["endpointSelector": ["matchLabels": ["app": "backend-api"]], "egress": egress],
        ]
    }

    func testSeedExternalPolicyAllowsOnlyItsPrefixes() throws {
        let w = try makeWorld()
        assertReachability(
            [Probe(from: w.backend, to: w.other, port: 80, .passes)], "no policy: the world is reachable")

        try importPolicy("allow-egress-to-external.yaml", into: w.agent)
        let before = try w.agent.droppedPackets(reason: 133)
        assertReachability(
            [
                Probe(from: w.backend, to: w.metadata, port: 80, .passes),
                Probe(from: w.backend, to: w.monitoring, port: 80, .passes),
                Probe(from: w.backend, to: w.other, port: 80, .dropped),
            ], "seed allow-egress-to-external.yaml")
        XCTAssertGreaterThan(try w.agent.droppedPackets(reason: 133), before, "the drop is counted as policy denied")

        let prefixes = try cidrPrefixes(w.agent)
        XCTAssertEqual(Set(prefixes.keys), ["169.254.169.254/32", "198.51.100.10/32"], "one identity per prefix")
        XCTAssertEqual(Set(prefixes.values).count, 2)

        let deleted = try w.agent.api(.DELETE, "/v1/policy?namespace=api-tier&name=allow-egress-to-external")
        XCTAssertEqual(deleted.status, 200, deleted.body)
        try w.agent.waitForPolicyRevision()
        XCTAssertEqual(try cidrPrefixes(w.agent), [:], "prefixes no policy names are released")
        assertReachability([Probe(from: w.backend, to: w.other, port: 80, .passes)], "policy deleted")
    }

    func testCIDRSetExceptAndLongestPrefix() throws {
        let topology = try makeTopology()
        let backend = try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        let inside = try topology.addExternalHost(ipv4: "203.0.113.10")
        let carved = try topology.addExternalHost(ipv4: "203.0.113.200")
        let outside = try topology.addExternalHost(ipv4: "192.0.2.10")
        for host in [inside, carved, outside] { _ = try TCPServer(on: host, port: 80, in: topology) }
        let agent = try startAgent(in: topology)
        _ = try agent.registerEndpoint(id: 1, pod: backend, labels: ["k8s:app=backend-api"])

        try putPolicy(
            Self.egressPolicy(
                "cidr-set", [["toCIDRSet": [["cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]]]]]),
            into: agent)
        assertReachability(
            [
                Probe(from: backend, to: inside, port: 80, .passes),
                Probe(from: backend, to: carved, port: 80, .dropped),
                Probe(from: backend, to: outside, port: 80, .dropped),
            ], "toCIDRSet 203.0.113.0/24 except 203.0.113.128/25")
        XCTAssertEqual(Set(try cidrPrefixes(agent).keys), ["203.0.113.0/24", "203.0.113.128/25"])

        // A more specific allow inside the carved-out range: the longest prefix wins.
        try putPolicy(Self.egressPolicy("carved-host", [["toCIDR": ["203.0.113.200/32"]]]), into: agent)
        assertReachability(
            [
                Probe(from: backend, to: carved, port: 80, .passes),
                Probe(from: backend, to: outside, port: 80, .dropped),
            ], "a /32 allow inside the except range")
    }

    func testEntities() throws {
        let topology = try makeTopology()
        let backend = try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        let peer = try topology.addPod(namespace: "api-tier", name: "peer", dualStack: false)
        let external = try topology.addExternalHost(ipv4: "192.0.2.77")
        _ = try TCPServer(on: external, port: 80, in: topology)
        _ = try TCPServer(on: peer, port: 80, in: topology)
        let agent = try startAgent(in: topology)
        _ = try agent.registerEndpoint(id: 1, pod: backend, labels: ["k8s:app=backend-api"])
        _ = try agent.registerEndpoint(id: 2, pod: peer, labels: ["k8s:app=peer"])

        try putPolicy(Self.egressPolicy("to-world", [["toEntities": ["world"]]]), into: agent)
        assertReachability(
            [
                Probe(from: backend, to: external, port: 80, .passes),
                Probe(from: backend, to: peer, port: 80, .dropped),
            ], "toEntities world: outside the cluster only")

        try putPolicy(Self.egressPolicy("to-world", [["toEntities": ["cluster"]]]), into: agent)
        assertReachability(
            [
                Probe(from: backend, to: external, port: 80, .dropped),
                Probe(from: backend, to: peer, port: 80, .passes),
            ], "toEntities cluster: pods, not the world")

        try putPolicy(Self.egressPolicy("to-world", [["toEntities": ["all"]]]), into: agent)
        assertReachability(
            [
                Probe(from: backend, to: external, port: 80, .passes),
                Probe(from: backend, to: peer, port: 80, .passes),
            ], "toEntities all")

        let rejected = try agent.api(.PUT, "/v1/policy", Self.egressPolicy("bad", [["toEntities": ["kube-apiserver"]]]))
        XCTAssertEqual(rejected.status, 400, rejected.body)
        XCTAssertTrue(rejected.body.contains("kube-apiserver"), rejected.body)
    }

    func testDisabledPluginRejectsCIDRRulesWholly() throws {
        let topology = try makeTopology()
        let backend = try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        let config = NSTemporaryDirectory() + "nodeagent-cidr-off-\(topology.tag).json"
        try #"{"plugins": {"cidr-policy": {"enabled": false}}}"#.write(
            toFile: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: config) }
        let agent = try startAgent(in: topology, configFile: config)
        _ = try agent.registerEndpoint(id: 1, pod: backend, labels: ["k8s:app=backend-api"])

        let health = try agent.api(.GET, "/v1/healthz")
        let plugin = health.json?["plugins"]?.arrayValue?.first { $0["name"]?.stringValue == "cidr-policy" }
        XCTAssertEqual(plugin?["enabled"]?.boolValue, false, health.body)
        XCTAssertEqual(plugin?["state"]?.stringValue, "disabled", health.body)

        let revision = try agent.api(.GET, "/v1/policy").json?["revision"]?.intValue
        let rejected = try agent.api(.PUT, "/v1/policy", Self.egressPolicy("cidr", [["toCIDR": ["192.0.2.0/24"]]]))
        XCTAssertEqual(rejected.status, 501, rejected.body)
        XCTAssertTrue(rejected.body.contains("cidr-policy"), rejected.body)
        XCTAssertEqual(try agent.api(.GET, "/v1/policy").json?["revision"]?.intValue, revision, "nothing applied")
        XCTAssertEqual(try agent.api(.GET, "/v1/policy").json?["policies"]?.arrayValue?.count, 0)
    }

    func testHostEntityReachesTheNode() throws {
        let topology = try makeTopology()
        let backend = try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        // A server in the node namespace, on the gateway address every pod routes through.
        let node = NodeHost(netns: topology.nodeNetns, ipv4: topology.gatewayIPv4)
        _ = try TCPServer(on: node, port: 8081, in: topology)
        let external = try topology.addExternalHost(ipv4: "192.0.2.78")
        _ = try TCPServer(on: external, port: 8081, in: topology)
        let agent = try startAgent(in: topology)
        _ = try agent.registerEndpoint(id: 1, pod: backend, labels: ["k8s:app=backend-api"])

        try putPolicy(Self.egressPolicy("to-host", [["toEntities": ["host"]]]), into: agent)
        assertReachability(
            [
                Probe(from: backend, to: node, port: 8081, .passes),
                Probe(from: backend, to: external, port: 8081, .dropped),
            ], "toEntities host")
    }
}

/// The node namespace itself as a traffic endpoint.
struct NodeHost: NetworkHost {
    var netns: String
    var ipv4: String
    var ipv6: String? { nil }
}
