import AgentAPI
import Foundation
import XCTest

/// `toServices` in cluster mode: a service whose backends are pods of other nodes is allowed by those pods'
/// identities, learned through etcd, including a backend pod that appears on another node after the service.
final class ClusterToServicesTests: EndToEndTestCase {
    private func putService(_ agent: AgentProcess, backends: [(String, Int)], status: Int) throws {
        let body: JSON = [
            "id": 11, "frontend-address": ["ip": "10.96.11.11", "port": 80, "protocol": "TCP"],
            "backend-addresses": .array(backends.map { ["ip": .string($0.0), "port": .int(Int64($0.1))] }),
            "flags": ["type": "ClusterIP", "name": "api", "namespace": "api-tier"],
        ]
        let result = try agent.api(.PUT, "/v1/service/11", body)
        XCTAssertEqual(result.status, status, "PUT /v1/service/11: \(result.body)")
    }

    func testBackendsOnOtherNodesAreAllowedByTheirPodsIdentities() throws {
        let s = try makeClusterSeedScenario()
        let node1 = s.agents[0]
        let policy: JSON = [
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": ["name": "frontend-to-api", "namespace": "web-tier"],
            "spec": [
                "endpointSelector": ["matchLabels": ["app": "frontend"]],
                "egress": [["toServices": [["k8sService": ["serviceName": "api", "namespace": "api-tier"]]]]],
            ],
        ]
        XCTAssertEqual(try node1.api(.PUT, "/v1/policy", policy).status, 200)
        try node1.waitForPolicyRevision()
        try putService(node1, backends: [(s.backend.ipv4, 8080)], status: 201)
        try node1.waitForPolicyRevision()
        assertReachability(
            [
                Probe(from: s.frontend, to: s.backend, port: 8080, .passes),
                Probe(from: s.frontend, to: s.postgres, port: 5432, .dropped),
            ], "the service's backend is backend-api on node 2")
        XCTAssertEqual(try node1.getJSON("/v1/ipcache/\(s.backend.ipv4)")["source"]?.stringValue, "remote")

        try putService(node1, backends: [(s.postgres.ipv4, 5432)], status: 200)
        assertReachability(
            [
                Probe(from: s.frontend, to: s.backend, port: 8080, .dropped),
                Probe(from: s.frontend, to: s.postgres, port: 5432, .passes),
            ], "the backend moved to postgres on node 3")

        // A backend address no pod holds yet, then a pod on node 2 taking it.
        let late = try s.cluster.nodes[1].addPod(namespace: "api-tier", name: "api-late", dualStack: false)
        _ = try TCPServer(on: late, port: 8080, in: s.cluster.nodes[1])
        try putService(node1, backends: [(late.ipv4, 8080)], status: 200)
        XCTAssertEqual(try node1.getJSON("/v1/ipcache/\(late.ipv4)")["source"]?.stringValue, "prefix")
        _ = try s.agents[1].registerEndpoint(id: 20, pod: late, labels: ["k8s:app=api-late"])
        try node1.waitForRemoteEndpoints(5)
        let entry = try node1.getJSON("/v1/ipcache/\(late.ipv4)")
        XCTAssertEqual(entry["source"]?.stringValue, "remote", "the pod's own entry, not the host prefix: \(entry)")
        assertReachability(
            [Probe(from: s.frontend, to: late, port: 8080, .passes)], "the backend pod appeared on node 2")
    }
}
