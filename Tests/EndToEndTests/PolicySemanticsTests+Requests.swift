import AgentAPI
import Foundation
import XCTest

/// Policy requests: atomic rejection of a bad document (traffic unchanged), unsupported fields refused by name,
/// and the get/delete variants of the policy API.
extension PolicySemanticsTests {
    func testAnInvalidDocumentRejectsTheWholeRequest() throws {
        let p = try makePair(tcp: [80, 81])
        let revision = try p.agent.importPolicies([
            serverIngress("allow-80", [["fromEndpoints": fromClient, "toPorts": ports(80)]])
        ])
        let before = try p.agent.getJSON("/v1/policy")

        let valid = serverIngress("allow-81", [["fromEndpoints": fromClient, "toPorts": ports(81)]])
        let badPort = serverIngress(
            "bad", [["fromEndpoints": fromClient, "toPorts": [["ports": [["port": "Eighty!"]]]]]])
        assertAPIError(
            try p.agent.api(.PUT, "/v1/policy", [valid, badPort]), status: 400, code: "invalid-field",
            field: "[1].spec.ingress[0].toPorts[0].ports[0].port", mentions: ["Eighty!"])
        assertAPIError(
            try p.agent.api(.PUT, "/v1/policy", [badPort, valid]), status: 400, code: "invalid-field",
            field: "[0].spec.ingress[0].toPorts[0].ports[0].port")
        assertAPIError(
            try p.agent.api(.PUT, "/v1/policy", [valid, valid]), status: 400, code: "invalid-field",
            field: "[1].metadata.name", "the same policy twice")
        XCTAssertEqual(try p.agent.getJSON("/v1/policy"), before, "nothing applied, revision \(revision) unchanged")

        // The same through nodectl, from a multi-document YAML file.
        let file = "\(p.agent.directory)/two.yaml"
        try """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: allow-81, namespace: lab}
        spec:
          endpointSelector: {matchLabels: {app: server}}
          ingress: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "81"}]}]}]
        ---
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: odd, namespace: lab}
        spec:
          endpointSelector: {matchExpressions: [{key: app, operator: Maybe, values: [x]}]}
          ingress: []
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let imported = try p.agent.nodectl("policy", "import", file)
        XCTAssertEqual(imported.status, 1, imported.stdout)
        XCTAssertTrue(
            imported.stderr.contains("[1].spec.endpointSelector.matchExpressions[0].operator"), imported.stderr)
        XCTAssertTrue(imported.stderr.contains("Maybe"), imported.stderr)
        XCTAssertEqual(try p.agent.getJSON("/v1/policy"), before)
        assertReachability(
            [
                Probe(from: p.client, to: p.server, port: 80, .passes),
                Probe(from: p.client, to: p.server, port: 81, .dropped),
            ], "traffic unchanged by the rejected requests")
    }

    func testUnsupportedFieldsAreRejectedByName() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        let selector: JSON = ["matchLabels": ["app": "x"]]
        let cases: [(JSON, String, String)] = [
            (
                ["endpointSelector": selector, "egress": [["toFQDNs": [["matchName": "example.com"]]]]],
                "spec.egress[0].toFQDNs", "toFQDNs"
            ),
            (
                [
                    "endpointSelector": selector,
                    "egress": [
                        [
                            "toPorts": [
                                ["ports": [["port": "80", "protocol": "TCP"]], "rules": ["http": [["method": "GET"]]]]
                            ]
                        ]
                    ],
                ], "spec.egress[0].toPorts[0].rules", "egress HTTP rules"
            ),
            (
                [
                    "endpointSelector": selector,
                    "ingressDeny": [["toPorts": [["ports": [["port": "80"]], "rules": ["http": []]]]]],
                ],
                "spec.ingressDeny[0].toPorts[0].rules", "ingressDeny"
            ),
            (
                [
                    "endpointSelector": selector,
                    "egress": [["toServices": [["k8sServiceSelector": ["selector": [:]]]]]],
                ],
                "spec.egress[0].toServices[0].k8sServiceSelector", "k8sServiceSelector"
            ),
            (["nodeSelector": selector, "ingress": []], "spec.nodeSelector", "nodeSelector"),
        ]
        let revision = try agent.getJSON("/v1/policy")["revision"]
        for (spec, field, mention) in cases {
            assertAPIError(
                try agent.api(.PUT, "/v1/policy", networkPolicy("lab", "unsupported", spec: spec)), status: 400,
                code: "invalid-field", field: field, mentions: [mention])
        }
        XCTAssertEqual(try agent.getJSON("/v1/policy"), ["revision": revision ?? 0, "policies": []])
    }

    func testPolicyGetAndDeleteVariants() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        func policy(_ namespace: String, _ name: String) -> JSON {
            networkPolicy(
                namespace, name, spec: ["endpointSelector": ["matchLabels": ["app": .string(name)]], "ingress": []])
        }
        let documents = [policy("ns1", "p1"), policy("ns1", "p2"), policy("ns2", "p3"), policy("default", "p4")]
        let imported = try agent.api(.PUT, "/v1/policy", .array(documents))
        XCTAssertEqual(imported.json?["policies"], ["ns1/p1", "ns1/p2", "ns2/p3", "default/p4"], "\(imported)")
        var revision = try XCTUnwrap(imported.json?["revision"]?.intValue)

        let stored = try agent.getJSON("/v1/policy")
        XCTAssertEqual(stored["revision"]?.intValue, revision)
        XCTAssertEqual(
            Set((stored["policies"]?.arrayValue ?? []).map { $0.serialized() }), Set(documents.map { $0.serialized() }),
            "stored as imported")

        func delete(_ query: String) throws -> APIResult { try agent.api(.DELETE, "/v1/policy?\(query)") }
        func expectDeleted(_ query: String, _ names: [String], file: StaticString = #filePath, line: UInt = #line)
            throws
        {
            let result = try delete(query)
            XCTAssertEqual(result.status, 200, "\(result)", file: file, line: line)
            XCTAssertEqual(result.json?["deleted"], JSON(names), "DELETE ?\(query)", file: file, line: line)
            let next = result.json?["revision"]?.intValue ?? -1
            XCTAssertEqual(
                next, names.isEmpty ? revision : revision + 1, "revision after DELETE ?\(query)", file: file, line: line
            )
            revision = next
        }
        try expectDeleted("namespace=ns1&name=p1", ["ns1/p1"])
        assertAPIError(try delete("namespace=ns1&name=p1"), status: 404, code: "not-found", mentions: ["p1"])
        try expectDeleted("name=p4", ["default/p4"])
        try expectDeleted("namespace=ns1", ["ns1/p2"])
        try expectDeleted("namespace=empty", [])
        assertAPIError(try agent.api(.DELETE, "/v1/policy"), status: 400, code: "invalid-field")
        assertAPIError(try delete("all=true&namespace=ns2"), status: 400, code: "invalid-field", field: "all")
        assertAPIError(try delete("colour=red"), status: 400, code: "invalid-field", field: "colour")
        XCTAssertEqual(try agent.getJSON("/v1/policy")["policies"]?.arrayValue?.count, 1, "only ns2/p3 is left")

        let get = try agent.nodectl("policy", "get")
        XCTAssertEqual(get.status, 0, get.stderr)
        XCTAssertTrue(get.stdout.contains("ns2") && get.stdout.contains("p3"), get.stdout)
        let all = try agent.nodectl("policy", "delete", "--all")
        XCTAssertEqual(all.status, 0, all.stderr)
        XCTAssertTrue(all.stdout.contains("ns2/p3"), all.stdout)
        XCTAssertEqual(try agent.getJSON("/v1/policy")["policies"], [])
    }
}
