import AgentAPI
import Foundation
import XCTest

/// `toServices`: an egress rule naming a service allows exactly the service's backends, and follows them as the
/// service changes (backends replaced, service deleted, a backend pod appearing), with real traffic. The client
/// reaches the backends by their own addresses, which is what the datapath's policy sees after the load balancer.
final class ToServicesPolicyTests: EndToEndTestCase {
    private struct World {
        var agent: AgentProcess
        var client: Pod
        var db: Pod
        var cache: Pod
        var outside: ExternalHost
    }

    private func makeWorld() throws -> World {
        let topology = try makeTopology()
        let client = try topology.addPod(namespace: "web-tier", name: "client", dualStack: false)
        let db = try topology.addPod(namespace: "data", name: "db", dualStack: false)
        let cache = try topology.addPod(namespace: "data", name: "cache", dualStack: false)
        let outside = try topology.addExternalHost(ipv4: "198.51.100.30")
        for host in [db, cache] as [any NetworkHost] + [outside] {
            _ = try TCPServer(on: host, port: 5432, in: topology)
        }
        let agent = try startAgent(in: topology)
        _ = try agent.registerEndpoint(id: 1, pod: client, labels: ["k8s:app=client"])
        _ = try agent.registerEndpoint(id: 2, pod: db, labels: ["k8s:app=db"])
        _ = try agent.registerEndpoint(id: 3, pod: cache, labels: ["k8s:app=cache"])
        return World(agent: agent, client: client, db: db, cache: cache, outside: outside)
    }

    private func putService(_ agent: AgentProcess, backends: [String], status: Int) throws {
        let body: JSON = [
            "id": 7, "frontend-address": ["ip": "10.96.7.7", "port": 5432, "protocol": "TCP"],
            "backend-addresses": .array(backends.map { ["ip": .string($0), "port": 5432] }),
            "flags": ["type": "ClusterIP", "name": "db", "namespace": "data"],
        ]
        let result = try agent.api(.PUT, "/v1/service/7", body)
        XCTAssertEqual(result.status, status, "PUT /v1/service/7: \(result.body)")
    }

    private func importPolicy(_ agent: AgentProcess) throws {
        let policy: JSON = [
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": ["name": "client-to-db", "namespace": "web-tier"],
            "spec": [
                "endpointSelector": ["matchLabels": ["app": "client"]],
                "egress": [
                    [
                        "toServices": [["k8sService": ["serviceName": "db", "namespace": "data"]]],
                        "toPorts": [["ports": [["port": "5432", "protocol": "TCP"]]]],
                    ]
                ],
            ],
        ]
        let result = try agent.api(.PUT, "/v1/policy", policy)
        XCTAssertEqual(result.status, 200, "PUT /v1/policy: \(result.body)")
        try agent.waitForPolicyRevision()
    }

    func testEgressFollowsTheServicesBackends() throws {
        let w = try makeWorld()
        try importPolicy(w.agent)
        assertReachability(
            [Probe(from: w.client, to: w.db, port: 5432, .dropped)], "the service does not exist yet: nothing allowed")

        try putService(w.agent, backends: [w.db.ipv4], status: 201)
        assertReachability(
            [
                Probe(from: w.client, to: w.db, port: 5432, .passes),
                Probe(from: w.client, to: w.cache, port: 5432, .dropped),
            ], "the service's backend is the db pod")
        let trace = try w.agent.getJSON("/v1/policy/trace?src=1&dst=2&dport=5432")
        XCTAssertEqual(trace["verdict"]?.stringValue, "allowed", "\(trace)")
        XCTAssertTrue(trace["reason"]?.stringValue?.contains("web-tier/client-to-db") ?? false, "\(trace)")

        try putService(w.agent, backends: [w.cache.ipv4], status: 200)
        assertReachability(
            [
                Probe(from: w.client, to: w.db, port: 5432, .dropped),
                Probe(from: w.client, to: w.cache, port: 5432, .passes),
            ], "the backend moved to the cache pod")

        XCTAssertEqual(try w.agent.api(.DELETE, "/v1/service/7").status, 200)
        assertReachability(
            [Probe(from: w.client, to: w.cache, port: 5432, .dropped)], "the service is gone: nothing allowed")
    }

    func testABackendOutsideThePodsIsAllowedAsItsHostPrefix() throws {
        let w = try makeWorld()
        try importPolicy(w.agent)
        try putService(w.agent, backends: [w.outside.ipv4, w.db.ipv4], status: 201)
        assertReachability(
            [
                Probe(from: w.client, to: w.outside, port: 5432, .passes),
                Probe(from: w.client, to: w.db, port: 5432, .passes),
                Probe(from: w.client, to: w.cache, port: 5432, .dropped),
            ], "one backend outside the cluster, one pod")
        let entry = try w.agent.getJSON("/v1/ipcache/\(w.outside.ipv4)")
        XCTAssertEqual(entry["source"]?.stringValue, "prefix", "\(String(describing: entry))")
        XCTAssertGreaterThanOrEqual(entry["identity"]?.intValue ?? 0, 1 << 24, "a CIDR identity for the /32")

        try putService(w.agent, backends: [w.db.ipv4], status: 200)
        assertReachability(
            [Probe(from: w.client, to: w.outside, port: 5432, .dropped)], "the outside backend was removed")
        XCTAssertEqual(
            try w.agent.api(.GET, "/v1/ipcache/\(w.outside.ipv4)").status, 404, "its prefix identity is released")
    }

    func testABackendPodCreatedAfterTheServiceIsAllowedByItsIdentity() throws {
        let topology = try makeTopology()
        let client = try topology.addPod(namespace: "web-tier", name: "client", dualStack: false)
        let late = try topology.addPod(namespace: "data", name: "db-late", dualStack: false)
        _ = try TCPServer(on: late, port: 5432, in: topology)
        let agent = try startAgent(in: topology)
        _ = try agent.registerEndpoint(id: 1, pod: client, labels: ["k8s:app=client"])
        try importPolicy(agent)
        try putService(agent, backends: [late.ipv4], status: 201)
        _ = try agent.registerEndpoint(id: 2, pod: late, labels: ["k8s:app=db"])
        let entry = try agent.getJSON("/v1/ipcache/\(late.ipv4)")
        XCTAssertEqual(entry["source"]?.stringValue, "endpoint", "\(String(describing: entry))")
        assertReachability(
            [Probe(from: client, to: late, port: 5432, .passes)], "the backend pod registered after the service")
        XCTAssertEqual(try agent.api(.DELETE, "/v1/endpoint/2").status, 200)
        XCTAssertEqual(
            try agent.getJSON("/v1/ipcache/\(late.ipv4)")["source"]?.stringValue, "prefix",
            "with the pod gone, the backend's address is selected as its host prefix again")
    }
}
