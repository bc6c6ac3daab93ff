import AgentAPI
import Foundation
import XCTest

/// `/v1/endpoint...` against the real daemon: creation and idempotence, conflicts, validation naming the field,
/// deletion leaving nothing in the datapath, relabelling (identity and policy follow), filters, the realized
/// policy as the kernel holds it, and nodectl's endpoint commands.
final class EndpointAPITests: EndToEndTestCase {
    private func changeRequest(_ pod: Pod, labels: [String] = ["k8s:app=a"]) -> JSON {
        var addressing: [String: JSON] = ["ipv4": .string(pod.ipv4)]
        if let ipv6 = pod.ipv6 { addressing["ipv6"] = .string(ipv6) }
        return [
            "interface-name": .string(pod.hostInterface), "addressing": .object(addressing),
            "labels": JSON(labels), "k8s-namespace": .string(pod.k8sNamespace), "k8s-pod-name": .string(pod.name),
            "container-id": .string("ctr-\(pod.name)"),
        ]
    }

    func testPutCreatesAndTheSamePutAgainChangesNothing() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "web-tier", name: "frontend-0")
        let agent = try startAgent(in: topology)
        let request = changeRequest(pod, labels: ["k8s:app=frontend"])

        let created = try agent.api(.PUT, "/v1/endpoint/12", request)
        XCTAssertEqual(created.status, 201, "\(created)")
        let endpoint = try XCTUnwrap(created.json)
        XCTAssertEqual(endpoint["id"], 12)
        XCTAssertEqual(endpoint["interface-name"]?.stringValue, pod.hostInterface)
        XCTAssertEqual(endpoint["interface-index"]?.intValue, Int64(pod.hostIfindex))
        XCTAssertEqual(endpoint["addressing"], ["ipv4": .string(pod.ipv4), "ipv6": .string(canonicalIP(pod.ipv6!))])
        XCTAssertEqual(endpoint["k8s-namespace"], "web-tier")
        XCTAssertEqual(endpoint["k8s-pod-name"], "frontend-0")
        XCTAssertEqual(endpoint["container-id"], "ctr-frontend-0")
        XCTAssertEqual(endpoint["state"], "ready")
        let labels = Set(endpoint["labels"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        XCTAssertEqual(
            labels, ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=web-tier"], "namespace label added")
        let identity = try XCTUnwrap(endpoint["identity"]?["id"]?.intValue)
        XCTAssertGreaterThanOrEqual(identity, 256, "a cluster-allocated identity")
        XCTAssertEqual(Set(endpoint["identity"]?["labels"]?.arrayValue?.compactMap(\.stringValue) ?? []), labels)
        XCTAssertEqual(endpoint["policy-enforcement"], ["ingress": false, "egress": false], "no policy selects it")
        let revision = try agent.getJSON("/v1/policy")["revision"]
        XCTAssertEqual(endpoint["policy-revision"], revision)

        let again = try agent.api(.PUT, "/v1/endpoint/12", request)
        XCTAssertEqual(again.status, 200, "the same PUT again: \(again)")
        XCTAssertEqual(again.json, endpoint, "nothing changed: same identity, same revision")
        XCTAssertEqual(try agent.getJSON("/v1/endpoint/12"), endpoint)
        XCTAssertEqual(try agent.getJSON("/v1/identity/\(identity)")["references"], 1, "no reference leaked")
        XCTAssertEqual(try agent.getJSON("/v1/endpoint").arrayValue?.count, 1)

        let prefixed = try agent.api(.GET, "/v1/endpoint/cilium-local:12")
        XCTAssertEqual(prefixed.json, endpoint, "Cilium's default id prefix is accepted")
    }

    func testAPutThatChangesLabelsUpdatesInPlaceAndAnotherInterfaceConflicts() throws {
        let topology = try makeTopology()
        let a = try topology.addPod(namespace: "web-tier", name: "a")
        let b = try topology.addPod(namespace: "web-tier", name: "b")
        let agent = try startAgent(in: topology)
        let node = topology.nodeNetns
        let first = try XCTUnwrap(try agent.api(.PUT, "/v1/endpoint/1", changeRequest(a, labels: ["k8s:app=a"])).json)
        let firstIdentity = try XCTUnwrap(first["identity"]?["id"]?.intValue)

        let relabelled = try agent.api(.PUT, "/v1/endpoint/1", changeRequest(a, labels: ["k8s:app=other"]))
        XCTAssertEqual(relabelled.status, 200, "an update, not a creation: \(relabelled)")
        let secondIdentity = try XCTUnwrap(relabelled.json?["identity"]?["id"]?.intValue)
        XCTAssertNotEqual(secondIdentity, firstIdentity)
        assertAPIError(try agent.api(.GET, "/v1/identity/\(firstIdentity)"), status: 404, code: "not-found")
        XCTAssertEqual(try agent.ipcache()[hostPrefix(a.ipv4)], secondIdentity)
        XCTAssertEqual(try agent.ipcache()[hostPrefix(a.ipv6!)], secondIdentity)
        let row = try agent.mapEntries("na_endpoints").first
        XCTAssertEqual(row?["value"]?["identity"]?.intValue, secondIdentity, "\(row ?? .null)")
        // Its slot (the copy the programs read without a hash lookup) holds the new row once a grace period passed.
        var slots: [JSON] = []
        for _ in 0..<50 {
            slots = try agent.mapEntries("na_ep_slots")
            if slots.first?["value"] == row?["value"] { break }
            usleep(100_000)
        }
        XCTAssertEqual(slots.count, 1, "\(slots)")
        XCTAssertEqual(slots.first?["key"], row?["key"])
        XCTAssertEqual(slots.first?["value"], row?["value"], "the slot holds the row na_endpoints holds")

        // The same id on another interface is another pod: refused, and the endpoint stays where it was.
        assertAPIError(
            try agent.api(.PUT, "/v1/endpoint/1", changeRequest(b, labels: ["k8s:app=other"])), status: 409,
            code: "conflict", field: "interface-name", mentions: [a.hostInterface])
        let cache = try agent.ipcache()
        XCTAssertEqual(cache[hostPrefix(a.ipv4)], secondIdentity, "\(cache)")
        XCTAssertEqual(cache[hostPrefix(a.ipv6!)], secondIdentity, "\(cache)")
        XCTAssertNil(cache[hostPrefix(b.ipv4)], "\(cache)")
        let rows = try agent.mapEntries("na_endpoints").compactMap { $0["key"]?["ifindex"]?.intValue }
        XCTAssertEqual(rows, [Int64(a.hostIfindex)])
        XCTAssertTrue(try TCFilters.hasProgram("from_endpoint", on: a.hostInterface, "ingress", in: node))
        XCTAssertFalse(try TCFilters.show(b.hostInterface, "ingress", in: node).contains("bpf"), "untouched interface")
        XCTAssertEqual(try agent.getJSON("/v1/endpoint/1")["interface-name"]?.stringValue, a.hostInterface)
        XCTAssertEqual(try agent.getJSON("/v1/identity/\(secondIdentity)")["references"], 1)
    }

    func testAnAddressOrInterfaceOfAnotherEndpointIsAConflict() throws {
        let topology = try makeTopology()
        let a = try topology.addPod(namespace: "web-tier", name: "a")
        let b = try topology.addPod(namespace: "web-tier", name: "b")
        let agent = try startAgent(in: topology)
        let first = try agent.registerEndpoint(id: 1, pod: a, labels: ["k8s:app=a"])

        let sameIPv4 = changeRequest(b).setting("addressing", ["ipv4": .string(a.ipv4)])
        assertAPIError(
            try agent.api(.PUT, "/v1/endpoint/2", sameIPv4), status: 409, code: "conflict", field: "addressing.ipv4",
            mentions: [a.ipv4, "endpoint 1"])

        let sameIPv6 = changeRequest(b).setting("addressing", ["ipv4": .string(b.ipv4), "ipv6": .string(a.ipv6 ?? "")])
        assertAPIError(
            try agent.api(.PUT, "/v1/endpoint/2", sameIPv6), status: 409, code: "conflict", field: "addressing.ipv6")

        let sameInterface = changeRequest(b).setting("interface-name", .string(a.hostInterface))
        assertAPIError(
            try agent.api(.PUT, "/v1/endpoint/2", sameInterface), status: 409, code: "conflict",
            field: "interface-name", mentions: [a.hostInterface, "endpoint 1"])

        assertAPIError(try agent.api(.GET, "/v1/endpoint/2"), status: 404, code: "not-found")
        XCTAssertEqual(try agent.getJSON("/v1/endpoint/1"), first, "the owner is untouched")
        XCTAssertEqual(try agent.mapEntries("na_endpoints").count, 1)

        // An address the owner gives up is free for another endpoint, and no longer the owner's to take back.
        let moved = changeRequest(a).setting("addressing", ["ipv4": .string("10.244.99.1")])
        XCTAssertEqual(try agent.api(.PUT, "/v1/endpoint/1", moved).status, 200)
        XCTAssertEqual(try agent.api(.PUT, "/v1/endpoint/2", sameIPv4).status, 201, "a's old IPv4 is free")
        assertAPIError(
            try agent.api(.PUT, "/v1/endpoint/1", changeRequest(a)), status: 409, code: "conflict",
            field: "addressing.ipv4", mentions: [a.ipv4, "endpoint 2"])
        // So is the interface of a deleted endpoint.
        XCTAssertEqual(try agent.api(.DELETE, "/v1/endpoint/1").status, 200)
        let onA = changeRequest(a).setting("addressing", ["ipv4": .string("10.244.99.2")])
        XCTAssertEqual(try agent.api(.PUT, "/v1/endpoint/3", onA).status, 201, "a's interface is free")
    }

    func testBadFieldsAre400NamingTheFieldAndCreateNothing() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "web-tier", name: "a")
        let agent = try startAgent(in: topology)
        let good = changeRequest(pod)

        func with(_ key: String, _ value: JSON?) -> JSON { good.setting(key, value) }
        let cases: [(String, JSON, String)] = [
            ("/v1/endpoint/1", with("addressing", ["ipv4": "10.244.1.300"]), "addressing.ipv4"),
            ("/v1/endpoint/1", with("addressing", ["ipv4": "fd00::1"]), "addressing.ipv4"),
            ("/v1/endpoint/1", with("addressing", ["ipv6": "10.1.1.1"]), "addressing.ipv6"),
            ("/v1/endpoint/1", with("addressing", ["ipv4": 17]), "addressing.ipv4"),
            ("/v1/endpoint/1", with("addressing", [:]), "addressing"),
            ("/v1/endpoint/1", with("interface-name", nil), "interface-name"),
            ("/v1/endpoint/1", with("interface-name", "nosuchif0"), "interface-name"),
            ("/v1/endpoint/1", with("interface-name", "a/b"), "interface-name"),
            ("/v1/endpoint/1", with("colour", "blue"), "colour"),
            ("/v1/endpoint/1", with("labels", [1]), "labels[0]"),
            ("/v1/endpoint/1", with("labels", "k8s:app=a"), "labels"),
            ("/v1/endpoint/1", with("k8s-namespace", 3), "k8s-namespace"),
            ("/v1/endpoint/1", with("id", 2), "id"),
            ("/v1/endpoint/0", good, "id"),
            ("/v1/endpoint/abc", good, "id"),
            ("/v1/endpoint/70000", good, "id"),
            ("/v1/endpoint/-1", good, "id"),
        ]
        for (path, body, field) in cases {
            assertAPIError(
                try agent.api(.PUT, path, body), status: 400, code: "invalid-field", field: field,
                "PUT \(path) \(body.serialized())")
        }
        assertAPIError(
            try agent.api(.PUT, "/v1/endpoint/1", with("interface-name", "nosuchif0")), status: 400,
            code: "invalid-field", mentions: ["nosuchif0"])
        assertAPIError(
            try agent.api(.PUT, "/v1/endpoint/1", rawBody: "{\"interface-name\": "), status: 400, code: "invalid-json")
        assertAPIError(
            try agent.api(.PUT, "/v1/endpoint/1", ["not", "an", "object"]), status: 400, code: "invalid-field")

        XCTAssertEqual(try agent.getJSON("/v1/endpoint"), [], "no request created an endpoint")
        XCTAssertEqual(try agent.mapEntries("na_endpoints"), [])
        XCTAssertEqual(try agent.api(.PUT, "/v1/endpoint/1", good).status, 201, "the good request still works")
    }

    func testMissingEndpointsAre404() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        assertAPIError(try agent.api(.GET, "/v1/endpoint/42"), status: 404, code: "not-found", mentions: ["42"])
        assertAPIError(try agent.api(.DELETE, "/v1/endpoint/42"), status: 404, code: "not-found", mentions: ["42"])
        assertAPIError(try agent.api(.GET, "/v1/endpoint/42/policy"), status: 404, code: "not-found")
        assertAPIError(
            try agent.api(.PATCH, "/v1/endpoint/42/labels", ["add": ["k8s:x=y"]]), status: 404, code: "not-found")
        let nodectl = try agent.nodectl("endpoint", "get", "42")
        XCTAssertEqual(nodectl.status, 1)
        XCTAssertTrue(nodectl.stderr.contains("endpoint 42 does not exist"), nodectl.stderr)
    }

    func testDeleteRemovesEveryTraceFromTheDatapath() throws {
        let topology = try makeTopology()
        let a = try topology.addPod(namespace: "web-tier", name: "a")
        let b = try topology.addPod(namespace: "web-tier", name: "b")
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: a, labels: ["k8s:app=a"])
        try agent.registerEndpoint(id: 2, pod: b, labels: ["k8s:app=b"])
        try agent.importPolicies([
            networkPolicy(
                "web-tier", "a-from-b",
                spec: [
                    "endpointSelector": ["matchLabels": ["app": "a"]],
                    "ingress": [["fromEndpoints": [["matchLabels": ["app": "b"]]], "toPorts": ports(80)]],
                ])
        ])
        let identityA = try XCTUnwrap(try agent.getJSON("/v1/endpoint/1")["identity"]?["id"]?.intValue)
        let node = topology.nodeNetns

        // Everything there first, so that its absence afterwards means something.
        func rows() throws -> [Int64: Int64] {
            var result: [Int64: Int64] = [:]
            for entry in try agent.mapEntries("na_endpoints") {
                if let ifindex = entry["key"]?["ifindex"]?.intValue {
                    result[ifindex] = entry["value"]?["endpoint-id"]?.intValue
                }
            }
            return result
        }
        func outerKeys() throws -> Set<Int64> {
            Set(try agent.mapEntries("na_policy").compactMap { $0["key"]?["endpoint-id"]?.intValue })
        }
        XCTAssertEqual(try rows(), [Int64(a.hostIfindex): 1, Int64(b.hostIfindex): 2])
        // Beside theirs, the outer map holds empty spare maps under ids the next creates will likely use.
        XCTAssertTrue(try outerKeys().isSuperset(of: [1, 2]))
        let cacheBefore = try agent.ipcache()
        XCTAssertEqual(cacheBefore[hostPrefix(a.ipv4)], identityA)
        XCTAssertEqual(cacheBefore[hostPrefix(a.ipv6!)], identityA)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(agent.bpfRoot)/na_pol_00001"))
        XCTAssertFalse(
            try PolicyMapDump.read(endpoint: 1, root: agent.bpfRoot).isEmpty, "the policy gives endpoint 1 entries")
        XCTAssertTrue(try TCFilters.hasProgram("from_endpoint", on: a.hostInterface, "ingress", in: node))
        XCTAssertTrue(try TCFilters.hasProgram("to_endpoint", on: a.hostInterface, "egress", in: node))

        let deleted = try agent.api(.DELETE, "/v1/endpoint/1")
        XCTAssertEqual(deleted.status, 200, "\(deleted)")
        XCTAssertEqual(deleted.json?["id"], 1, "answers with the endpoint removed")

        XCTAssertEqual(try rows(), [Int64(b.hostIfindex): 2], "na_endpoints row gone")
        // Its maps stay in place, emptied, as a spare for the next endpoint under id 1: no row names it.
        XCTAssertTrue(try outerKeys().isSuperset(of: [1, 2]))
        XCTAssertTrue(try PolicyMapDump.read(endpoint: 1, root: agent.bpfRoot).isEmpty, "endpoint 1's entries gone")
        let cacheAfter = try agent.ipcache()
        XCTAssertNil(cacheAfter[hostPrefix(a.ipv4)], "\(cacheAfter)")
        XCTAssertNil(cacheAfter[hostPrefix(a.ipv6!)], "\(cacheAfter)")
        XCTAssertNotNil(cacheAfter[hostPrefix(b.ipv4)], "the other endpoint stays")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(agent.bpfRoot)/na_pol_00002"))
        XCTAssertEqual(try agent.mapEntries("na_pol_00001"), [], "the spare is empty")
        for point in ["ingress", "egress"] {
            let filters = try TCFilters.show(a.hostInterface, point, in: node)
            XCTAssertFalse(filters.contains("bpf"), "\(point) of \(a.hostInterface):\n\(filters)")
        }
        XCTAssertTrue(try TCFilters.hasProgram("from_endpoint", on: b.hostInterface, "ingress", in: node))
        assertAPIError(try agent.api(.GET, "/v1/identity/\(identityA)"), status: 404, code: "not-found")
        assertAPIError(try agent.api(.GET, "/v1/endpoint/1"), status: 404, code: "not-found")
    }

    /// A create leaves empty policy maps in place under the ids that come next; the next create fills those very
    /// maps (the outer map's slot keeps its inner map), and a restart keeps the spares, still empty.
    func testCreatesFillPolicyMapsMadeAhead() throws {
        let topology = try makeTopology()
        let a = try topology.addPod(namespace: "web-tier", name: "a")
        let b = try topology.addPod(namespace: "web-tier", name: "b")
        let agent = try startAgent(in: topology)
        _ = try agent.importPolicies([
            networkPolicy(
                "web-tier", "b-from-a",
                spec: [
                    "endpointSelector": ["matchLabels": ["app": "b"]],
                    "ingress": [["fromEndpoints": [["matchLabels": ["app": "a"]]], "toPorts": ports(80)]],
                ])
        ])
        try agent.registerEndpoint(id: 1, pod: a, labels: ["k8s:app=a"])
        func innerMapIDs() throws -> [Int64: Int64] {
            var result: [Int64: Int64] = [:]
            for entry in try agent.mapEntries("na_policy") {
                if let id = entry["key"]?["endpoint-id"]?.intValue {
                    result[id] = entry["value"]?["inner-map-id"]?.intValue
                }
            }
            return result
        }
        let spare = try XCTUnwrap(try innerMapIDs()[2], "a map waits under the next id")
        XCTAssertNotNil(try innerMapIDs()[3])
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(agent.bpfRoot)/na_polh_00002"))
        XCTAssertTrue(try PolicyMapDump.read(endpoint: 2, root: agent.bpfRoot).isEmpty, "the spare is empty")
        XCTAssertEqual(try agent.mapEntries("na_endpoints").count, 1, "no row names the spare's id")

        try agent.registerEndpoint(id: 2, pod: b, labels: ["k8s:app=b"])
        XCTAssertEqual(try innerMapIDs()[2], spare, "endpoint 2's policy went into the map made ahead")
        XCTAssertFalse(try PolicyMapDump.read(endpoint: 2, root: agent.bpfRoot).isEmpty, "the rule's entries")
        let spares = try innerMapIDs().filter { $0.key > 2 }
        XCTAssertFalse(spares.isEmpty)

        try agent.restart()
        XCTAssertEqual(try innerMapIDs().filter { $0.key > 2 }, spares, "the spares survive a restart")
        XCTAssertTrue(try PolicyMapDump.read(endpoint: 3, root: agent.bpfRoot).isEmpty)
        XCTAssertEqual(try innerMapIDs()[2], spare)
    }

    /// The pod's interface can vanish before the endpoint is deleted (the pod died first): the delete still works
    /// and clears the maps.
    func testDeleteAfterTheInterfaceIsGone() throws {
        let topology = try makeTopology()
        let a = try topology.addPod(namespace: "web-tier", name: "a")
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 5, pod: a, labels: ["k8s:app=a"])
        try Shell.run(["ip", "-n", topology.nodeNetns, "link", "delete", a.hostInterface])

        let deleted = try agent.api(.DELETE, "/v1/endpoint/5")
        XCTAssertEqual(deleted.status, 200, "\(deleted)")
        XCTAssertEqual(try agent.mapEntries("na_endpoints"), [])
        XCTAssertNil(try agent.ipcache()[hostPrefix(a.ipv4)])
        // Its policy map is gone, or emptied and kept as a spare for the next endpoint under id 5.
        if FileManager.default.fileExists(atPath: "\(agent.bpfRoot)/na_pol_00005") {
            XCTAssertTrue(try PolicyMapDump.read(endpoint: 5, root: agent.bpfRoot).isEmpty)
        }
        XCTAssertEqual(try agent.getJSON("/v1/endpoint"), [])
    }

    func testRelabellingChangesTheIdentityAndPolicyFollows() throws {
        let topology = try makeTopology()
        let frontend = try topology.addPod(namespace: "web-tier", name: "frontend", dualStack: false)
        let other = try topology.addPod(namespace: "web-tier", name: "web-other", dualStack: false)
        let backend = try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        // In a namespace no policy covers: only web-tier's default deny keeps web-tier pods from it.
        let sandbox = try topology.addPod(namespace: "sandbox", name: "free", dualStack: false)
        for pod in [backend, sandbox] { _ = try TCPServer(on: pod, port: 8080, in: topology) }
        let agent = try startAgent(in: topology)
        let front = try agent.registerEndpoint(id: 1, pod: frontend, labels: ["k8s:app=frontend"])
        let before = try agent.registerEndpoint(id: 2, pod: other, labels: ["k8s:app=web-other"])
        try agent.registerEndpoint(id: 3, pod: backend, labels: ["k8s:app=backend-api"])
        try agent.registerEndpoint(id: 4, pod: sandbox, labels: ["k8s:app=free"])
        for file in ["default-deny-all.yaml", "allow-traffic-policy.yaml"] {
            let imported = try agent.nodectl("policy", "import", try fixture(file))
            XCTAssertEqual(imported.status, 0, imported.stderr)
        }
        try agent.waitForPolicyRevision()
        assertReachability(
            [
                Probe(from: frontend, to: backend, port: 8080, .passes),
                Probe(from: other, to: backend, port: 8080, .dropped),
                Probe(from: other, to: sandbox, port: 8080, .dropped),
            ], "before relabelling")

        let relabelled = try agent.api(.PATCH, "/v1/endpoint/2/labels", ["add": ["k8s:app=frontend"]])
        XCTAssertEqual(relabelled.status, 200, "\(relabelled)")
        let labels = Set(relabelled.json?["labels"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        XCTAssertEqual(labels, ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=web-tier"], "app replaced")
        XCTAssertEqual(relabelled.json?["identity"]?["id"], front["identity"]?["id"], "now frontend's identity")
        XCTAssertNotEqual(relabelled.json?["identity"]?["id"], before["identity"]?["id"])
        assertAPIError(
            try agent.api(.GET, "/v1/identity/\(before["identity"]?["id"]?.intValue ?? 0)"), status: 404,
            code: "not-found", "web-other's identity is released")
        XCTAssertEqual(try agent.getJSON("/v1/identity/\(front["identity"]?["id"]?.intValue ?? 0)")["references"], 2)
        try agent.waitForPolicyRevision()
        assertReachability([Probe(from: other, to: backend, port: 8080, .passes)], "relabelled app=frontend")

        // Replacing all labels keeps the namespace label, so the pod stays under its namespace's policies.
        let replaced = try agent.api(.PATCH, "/v1/endpoint/2/labels", ["labels": ["k8s:app=web-other"]])
        XCTAssertEqual(replaced.status, 200, "\(replaced)")
        let replacedLabels = Set(replaced.json?["labels"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        XCTAssertEqual(replacedLabels, ["k8s:app=web-other", "k8s:io.kubernetes.pod.namespace=web-tier"])
        try agent.waitForPolicyRevision()
        assertReachability(
            [
                Probe(from: other, to: backend, port: 8080, .dropped),
                Probe(from: other, to: sandbox, port: 8080, .dropped),
                Probe(from: sandbox, to: backend, port: 8080, .dropped),
            ], "relabelled back to app=web-other")

        assertAPIError(
            try agent.api(.PATCH, "/v1/endpoint/2/labels", ["add": [7]]), status: 400, code: "invalid-field",
            field: "add[0]")
        assertAPIError(
            try agent.api(.PATCH, "/v1/endpoint/2/labels", ["rename": []]), status: 400, code: "invalid-field",
            field: "rename")
    }

    func testListFiltersByLabels() throws {
        let topology = try makeTopology()
        let frontend = try topology.addPod(namespace: "web-tier", name: "frontend", dualStack: false)
        let other = try topology.addPod(namespace: "web-tier", name: "web-other", dualStack: false)
        let backend = try topology.addPod(namespace: "api-tier", name: "backend", dualStack: false)
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: frontend, labels: ["k8s:app=frontend", "k8s:team=web"])
        try agent.registerEndpoint(id: 2, pod: other, labels: ["k8s:app=web-other", "k8s:team=web"])
        try agent.registerEndpoint(id: 3, pod: backend, labels: ["k8s:app=backend", "k8s:team=api"])

        func ids(_ query: String) throws -> [Int64] {
            try agent.getJSON("/v1/endpoint?labels=\(query)").arrayValue?.compactMap { $0["id"]?.intValue } ?? []
        }
        XCTAssertEqual(try ids("k8s:app=frontend"), [1])
        XCTAssertEqual(try ids("app=frontend"), [1], "a label without source matches any source")
        XCTAssertEqual(try ids("k8s:team=web"), [1, 2])
        XCTAssertEqual(try ids("k8s:team=web,k8s:app=web-other"), [2], "all labels must match")
        XCTAssertEqual(try ids("k8s:io.kubernetes.pod.namespace=api-tier"), [3])
        XCTAssertEqual(try ids("k8s:app=frontend,k8s:io.kubernetes.pod.namespace=api-tier"), [])
        XCTAssertEqual(try ids("reserved:app=frontend"), [], "another source does not match")
        // Answers are kept per filter until the state changes: a relabelled endpoint shows in the next answer.
        let toWeb: JSON = ["delete": ["k8s:team=api"], "add": ["k8s:team=web"]]
        XCTAssertEqual(try agent.api(.PATCH, "/v1/endpoint/3/labels", toWeb).status, 200)
        XCTAssertEqual(try ids("k8s:team=web"), [1, 2, 3])
        let backToAPI: JSON = ["delete": ["k8s:team=web"], "add": ["k8s:team=api"]]
        XCTAssertEqual(try agent.api(.PATCH, "/v1/endpoint/3/labels", backToAPI).status, 200)
        XCTAssertEqual(try ids("k8s:team=web"), [1, 2])
        XCTAssertEqual(try agent.getJSON("/v1/endpoint").arrayValue?.count, 3)
        assertAPIError(
            try agent.api(.GET, "/v1/endpoint?labels=%3Dx"), status: 400, code: "invalid-field", field: "labels[0]")

        let list = try agent.nodectl("endpoint", "list", "--labels", "k8s:team=web")
        XCTAssertEqual(list.status, 0, list.stderr)
        XCTAssertTrue(list.stdout.contains("frontend") && list.stdout.contains("web-other"), list.stdout)
        XCTAssertFalse(list.stdout.contains(backend.ipv4), list.stdout)
    }

    func testTheListShowsEveryChangeAtOnce() throws {
        let topology = try makeTopology()
        let a = try topology.addPod(namespace: "web-tier", name: "a", dualStack: false)
        let b = try topology.addPod(namespace: "web-tier", name: "b", dualStack: false)
        let agent = try startAgent(in: topology)
        // The list as a whole must equal the endpoints one by one, after every kind of change.
        func assertListIsCurrent(_ ids: [Int64], _ context: String, line: UInt = #line) throws {
            let list = try XCTUnwrap(try agent.getJSON("/v1/endpoint").arrayValue, line: line)
            XCTAssertEqual(list.compactMap { $0["id"]?.intValue }, ids, context, line: line)
            for item in list {
                XCTAssertEqual(
                    item, try agent.getJSON("/v1/endpoint/\(item["id"]?.intValue ?? 0)"), context, line: line)
            }
            XCTAssertEqual(
                try agent.getJSON("/v1/endpoint").arrayValue ?? [], list, "asked again: \(context)", line: line)
        }
        try assertListIsCurrent([], "empty")
        try agent.registerEndpoint(id: 1, pod: a, labels: ["k8s:app=a"])
        try assertListIsCurrent([1], "one created")
        try agent.registerEndpoint(id: 2, pod: b, labels: ["k8s:app=b"])
        try assertListIsCurrent([1, 2], "two created")
        XCTAssertEqual(try agent.api(.PATCH, "/v1/endpoint/2/labels", ["add": ["k8s:role=db"]]).status, 200)
        try assertListIsCurrent([1, 2], "relabelled")
        XCTAssertTrue(
            try agent.getJSON("/v1/endpoint")[1]?["labels"]?.arrayValue?.contains("k8s:role=db") ?? false,
            "the new label is listed")
        let policy = try agent.nodectl("policy", "import", try fixture("default-deny-all.yaml"))
        XCTAssertEqual(policy.status, 0, policy.stderr)
        try agent.waitForPolicyRevision()
        try assertListIsCurrent([1, 2], "policy revision and enforcement changed")
        XCTAssertEqual(try agent.api(.PUT, "/v1/endpoint/3", changeRequest(a)).status, 409, "a refused change")
        try assertListIsCurrent([1, 2], "after a refused change")
        XCTAssertEqual(try agent.api(.DELETE, "/v1/endpoint/1").status, 200)
        try assertListIsCurrent([2], "one deleted")
    }

    func testNodectlEndpointListAndGetShowWhatTheAPIHolds() throws {
        let topology = try makeTopology()
        let a = try topology.addPod(namespace: "web-tier", name: "frontend")
        let b = try topology.addPod(namespace: "api-tier", name: "backend")
        let agent = try startAgent(in: topology)
        let first = try agent.registerEndpoint(id: 4, pod: a, labels: ["k8s:app=frontend"])
        try agent.registerEndpoint(id: 9, pod: b, labels: ["k8s:app=backend"])

        let table = try agent.nodectl("endpoint", "list")
        XCTAssertEqual(table.status, 0, table.stderr)
        let lines = table.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 3, "a header and one row per endpoint:\n\(table.stdout)")
        for (pod, id) in [(a, 4), (b, 9)] {
            let identity = try agent.getJSON("/v1/endpoint/\(id)")["identity"]?["id"]?.intValue ?? -1
            let row = lines.first { $0.hasPrefix("\(id) ") }
            for text in [
                pod.name, pod.k8sNamespace, pod.hostInterface, pod.ipv4, canonicalIP(pod.ipv6!), "\(identity)", "ready",
            ] {
                XCTAssertTrue(row?.contains(text) ?? false, "row of endpoint \(id) shows \(text):\n\(table.stdout)")
            }
        }

        let json = try agent.nodectl("-o", "json", "endpoint", "list")
        XCTAssertEqual(json.status, 0, json.stderr)
        XCTAssertEqual(try JSON.parse(json.stdout), try agent.getJSON("/v1/endpoint"), "-o json is the API's list")

        let get = try agent.nodectl("endpoint", "get", "4")
        XCTAssertEqual(get.status, 0, get.stderr)
        for text in [a.hostInterface, a.ipv4, "k8s:app=frontend", "ready"] {
            XCTAssertTrue(get.stdout.contains(text), "nodectl endpoint get 4 shows \(text):\n\(get.stdout)")
        }
        let getJSON = try agent.nodectl("-o", "json", "endpoint", "get", "4")
        XCTAssertEqual(try JSON.parse(getJSON.stdout), first)
    }

    func testRealizedPolicyNamesItsRulesAndEqualsTheKernelMap() throws {
        let topology = try makeTopology()
        let frontend = try topology.addPod(namespace: "web-tier", name: "frontend", dualStack: false)
        let backend = try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        let postgres = try topology.addPod(namespace: "data-tier", name: "postgres", dualStack: false)
        let agent = try startAgent(in: topology)
        let front = try agent.registerEndpoint(id: 1, pod: frontend, labels: ["k8s:app=frontend"])
        try agent.registerEndpoint(id: 2, pod: backend, labels: ["k8s:app=backend-api"])
        let db = try agent.registerEndpoint(id: 3, pod: postgres, labels: ["k8s:app=postgres"])
        for file in ["default-deny-all.yaml", "allow-traffic-policy.yaml"] {
            XCTAssertEqual(try agent.nodectl("policy", "import", try fixture(file)).status, 0)
        }
        try agent.waitForPolicyRevision()
        let revision = try agent.getJSON("/v1/policy")["revision"]

        let realized = try agent.getJSON("/v1/endpoint/2/policy")
        XCTAssertEqual(realized["endpoint"], 2)
        XCTAssertEqual(realized["revision"], revision)
        XCTAssertEqual(realized["ingress-enforced"], true)
        XCTAssertEqual(realized["egress-enforced"], true)
        let endpoint = try agent.getJSON("/v1/endpoint/2")
        XCTAssertEqual(endpoint["policy-revision"], revision)
        XCTAssertEqual(endpoint["policy-enforcement"], ["ingress": true, "egress": true])
        let entries = realized["entries"]?.arrayValue ?? []

        let fromFrontend = entries.filter { $0["direction"] == "ingress" && $0["identity"] == front["identity"]?["id"] }
        XCTAssertEqual(fromFrontend.count, 1, "\(entries)")
        XCTAssertEqual(fromFrontend.first?["protocol"], "ANY", "an L3 rule: any protocol and port")
        XCTAssertEqual(fromFrontend.first?["deny"], false)
        XCTAssertEqual(fromFrontend.first?["rules"], ["api-tier/allow-ingress-to-backend ingress[0]"])
        let toDatabase = entries.filter { $0["direction"] == "egress" && $0["identity"] == db["identity"]?["id"] }
        XCTAssertEqual(toDatabase.count, 1, "\(entries)")
        XCTAssertEqual(toDatabase.first?["protocol"], "TCP")
        XCTAssertEqual(toDatabase.first?["port"], 5432)
        XCTAssertEqual(toDatabase.first?["end-port"], 5432)
        XCTAssertEqual(toDatabase.first?["rules"], ["api-tier/allow-backend-to-database egress[0]"])
        XCTAssertEqual(entries.count, 2, "default deny adds no entries, only enforcement: \(entries)")

        // The same entries, read straight from the pinned map by bpftool and decoded here from the ABI layout.
        let kernel = try PolicyMapDump.read(endpoint: 2, root: agent.bpfRoot)
        let api = Set(entries.map { PolicyMapDump.Row(apiEntry: $0) })
        XCTAssertEqual(api, Set(kernel), "GET /v1/endpoint/2/policy equals the kernel map")
        for entry in entries {
            XCTAssertNotEqual(entry["rule-id"], 0, "every entry carries its rule's id: \(entry)")
        }

        let view = try agent.nodectl("endpoint", "policy", "2")
        XCTAssertEqual(view.status, 0, view.stderr)
        XCTAssertTrue(view.stdout.contains("api-tier/allow-backend-to-database egress[0]"), view.stdout)
        XCTAssertTrue(view.stdout.contains("5432"), view.stdout)
    }

    func testAPeerAppearingOrGoingAwayReachesTheEndpointsWhoseRulesSelectIt() throws {
        let topology = try makeTopology()
        let frontend = try topology.addPod(namespace: "web-tier", name: "frontend", dualStack: false)
        let backend = try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        let postgres = try topology.addPod(namespace: "data-tier", name: "postgres", dualStack: false)
        _ = try TCPServer(on: backend, port: 8080, in: topology)
        let agent = try startAgent(in: topology)
        // Policy first, then the pods: the backend's rules name a frontend that does not exist yet.
        for file in ["default-deny-all.yaml", "allow-traffic-policy.yaml"] {
            XCTAssertEqual(try agent.nodectl("policy", "import", try fixture(file)).status, 0)
        }
        try agent.registerEndpoint(id: 2, pod: backend, labels: ["k8s:app=backend-api"])
        try agent.registerEndpoint(id: 3, pod: postgres, labels: ["k8s:app=postgres"])
        try agent.waitForPolicyRevision()
        func kernelRows(_ id: Int) throws -> Set<PolicyMapDump.Row> {
            Set(try PolicyMapDump.read(endpoint: id, root: agent.bpfRoot))
        }
        let backendAlone = try kernelRows(2)
        let postgresRows = try kernelRows(3)

        let front = try agent.registerEndpoint(id: 1, pod: frontend, labels: ["k8s:app=frontend"])
        let frontIdentity = try XCTUnwrap(front["identity"]?["id"]?.intValue)
        try agent.waitForPolicyRevision()
        let withFrontend = try kernelRows(2)
        XCTAssertEqual(
            withFrontend.subtracting(backendAlone).map(\.identity), [frontIdentity],
            "the backend's rule now admits the new frontend identity: \(withFrontend)")
        XCTAssertTrue(withFrontend.isSuperset(of: backendAlone))
        XCTAssertEqual(try kernelRows(3), postgresRows, "no rule of postgres names the frontend")
        assertReachability([Probe(from: frontend, to: backend, port: 8080, .passes)], "frontend created after policy")

        XCTAssertEqual(try agent.api(.DELETE, "/v1/endpoint/1").status, 200)
        XCTAssertEqual(try kernelRows(2), backendAlone, "the identity went away with its last endpoint")
        XCTAssertEqual(try kernelRows(3), postgresRows)
        let revision = try agent.getJSON("/v1/policy")["revision"]
        for id in [2, 3] { XCTAssertEqual(try agent.getJSON("/v1/endpoint/\(id)")["policy-revision"], revision) }
    }
}
