import AgentAPI
import Foundation
import XCTest

/// A namespaced policy whose endpointSelector names another namespace applies in its own namespace, and says so.
final class PolicySelectorNamespaceTests: EndToEndTestCase {
    func testASelectorNamingAnotherNamespaceAppliesInThePolicysOwnAndWarns() throws {
        let topology = try makeTopology()
        let client = try topology.addPod(namespace: "lab", name: "client", dualStack: false)
        let server = try topology.addPod(namespace: "lab", name: "server", dualStack: false)
        let elsewhere = try topology.addPod(namespace: "other", name: "server", dualStack: false)
        for pod in [server, elsewhere] {
            for port: UInt16 in [8080, 9090] { _ = try TCPServer(on: pod, port: port, in: topology) }
        }
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: client, labels: ["k8s:app=client"])
        try agent.registerEndpoint(id: 2, pod: server, labels: ["k8s:app=server"])
        try agent.registerEndpoint(id: 3, pod: elsewhere, labels: ["k8s:app=server"])

        let spec: JSON = [
            "endpointSelector": ["matchLabels": ["app": "server", "k8s:io.kubernetes.pod.namespace": "other"]],
            "ingress": [["fromEndpoints": [["matchLabels": ["app": "client"]]], "toPorts": ports(8080)]],
        ]
        let answer = try agent.api(.PUT, "/v1/policy", networkPolicy("lab", "server-ingress", spec: spec))
        XCTAssertEqual(answer.status, 200, "\(answer)")
        let warnings = answer.json?["warnings"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertEqual(warnings.count, 1, "\(answer)")
        XCTAssertTrue(warnings.first?.hasPrefix("lab/server-ingress: spec.endpointSelector: ") ?? false, "\(warnings)")
        XCTAssertTrue(warnings.first?.contains("k8s:io.kubernetes.pod.namespace=other") ?? false, "\(warnings)")
        try agent.waitForPolicyRevision()

        XCTAssertEqual(try agent.getJSON("/v1/endpoint/2")["policy-enforcement"]?["ingress"], true, "lab/server")
        XCTAssertEqual(try agent.getJSON("/v1/endpoint/3")["policy-enforcement"]?["ingress"], false, "other/server")
        assertReachability(
            [
                Probe(from: client, to: server, port: 8080, .passes),
                Probe(from: client, to: server, port: 9090, .dropped),
                Probe(from: client, to: elsewhere, port: 9090, .passes),
            ], "rule applied to the policy's own namespace")
        XCTAssertTrue(agent.stderrTail().contains("policy import: lab/server-ingress"), agent.stderrTail())

        // A selector that names no other namespace answers as before: no warnings field.
        let plain = try agent.api(
            .PUT, "/v1/policy",
            networkPolicy(
                "lab", "server-ingress",
                spec: spec.setting("endpointSelector", ["matchLabels": ["app": "server"]])))
        XCTAssertEqual(plain.status, 200, "\(plain)")
        XCTAssertNil(plain.json?["warnings"], "\(plain)")
    }

    func testNodectlPolicyImportPrintsTheWarning() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        let file = "\(Topology.temporaryDirectory)/na\(topology.tag)-policy.yaml"
        try """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: p, namespace: lab}
        spec:
          endpointSelector:
            matchExpressions: [{key: io.kubernetes.pod.namespace, operator: In, values: [kube-system]}]
          ingress: [{}]
        """.write(toFile: file, atomically: true, encoding: .utf8)
        topology.onDestroy { try? FileManager.default.removeItem(atPath: file) }
        let result = try agent.nodectl("policy", "import", file)
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stdout.contains("Imported 1 policy"), result.stdout)
        // Documents sent as an array name their element, as errors do.
        XCTAssertTrue(result.stdout.contains("Warning: lab/p: [0].spec.endpointSelector: "), result.stdout)
        XCTAssertTrue(result.stdout.contains("kube-system"), result.stdout)
    }
}
