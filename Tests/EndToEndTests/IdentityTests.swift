import AgentAPI
import Foundation
import Glibc
import XCTest

/// Security identities through the real daemon: Cilium's reserved numbers, sharing by security labels (and not
/// splitting on pod-unique labels), release with the last endpoint, stability across restarts and crashes, and
/// nodectl's identity commands.
final class IdentityTests: EndToEndTestCase {
    private func identityLabels(_ identity: JSON?) -> Set<String> {
        Set(identity?["labels"]?.arrayValue?.compactMap(\.stringValue) ?? [])
    }

    func testReservedIdentitiesHaveCiliumsNumbers() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        let expected: [Int64: String] = [
            1: "host", 2: "world", 3: "unmanaged", 4: "health", 5: "init", 6: "remote-node", 7: "kube-apiserver",
            8: "ingress", 9: "world-ipv4", 10: "world-ipv6",
        ]
        let list = try agent.getJSON("/v1/identity").arrayValue ?? []
        let reserved = list.filter { ($0["id"]?.intValue ?? 0) < 256 }
        XCTAssertEqual(reserved.count, expected.count, "\(reserved)")
        for (id, name) in expected {
            let listed = reserved.first { $0["id"]?.intValue == id }
            XCTAssertEqual(identityLabels(listed), ["reserved:\(name)"], "identity \(id)")
            let single = try agent.getJSON("/v1/identity/\(id)")
            XCTAssertEqual(identityLabels(single), ["reserved:\(name)"], "GET /v1/identity/\(id)")
        }
        XCTAssertFalse(list.contains { $0["id"] == 0 }, "0 is not an identity")
        assertAPIError(try agent.api(.GET, "/v1/identity/0"), status: 404, code: "not-found")
        assertAPIError(try agent.api(.GET, "/v1/identity/abc"), status: 400, code: "invalid-field", field: "id")
        let world = try agent.getJSON("/v1/identity?labels=reserved:world").arrayValue ?? []
        XCTAssertEqual(world.compactMap { $0["id"]?.intValue }, [2], "filtering by a reserved label")
    }

    func testSameSecurityLabelsShareOneIdentityWhilePodUniqueLabelsAreIgnored() throws {
        let topology = try makeTopology()
        let pods = try (0..<5).map { try topology.addPod(namespace: "shop", name: "web-\($0)", dualStack: false) }
        let agent = try startAgent(in: topology)
        let deployment = [
            try agent.registerEndpoint(id: 1, pod: pods[0], labels: ["k8s:app=web", "k8s:pod-template-hash=7d9f8c"]),
            try agent.registerEndpoint(id: 2, pod: pods[1], labels: ["k8s:app=web", "k8s:pod-template-hash=5b4c1a"]),
        ]
        let statefulSet = [
            try agent.registerEndpoint(
                id: 3, pod: pods[2],
                labels: [
                    "k8s:app=db", "k8s:statefulset.kubernetes.io/pod-name=db-0", "k8s:controller-revision-hash=a1",
                ]),
            try agent.registerEndpoint(
                id: 4, pod: pods[3],
                labels: [
                    "k8s:app=db", "k8s:statefulset.kubernetes.io/pod-name=db-1", "k8s:controller-revision-hash=b2",
                ]),
        ]
        let other = try agent.registerEndpoint(id: 5, pod: pods[4], labels: ["k8s:app=web", "k8s:tier=canary"])

        let web = try XCTUnwrap(deployment[0]["identity"]?["id"]?.intValue)
        XCTAssertEqual(deployment[1]["identity"]?["id"]?.intValue, web, "a rollout's pod-template-hash does not split")
        let db = try XCTUnwrap(statefulSet[0]["identity"]?["id"]?.intValue)
        XCTAssertEqual(statefulSet[1]["identity"]?["id"]?.intValue, db, "statefulset pod names do not split")
        XCTAssertNotEqual(web, db)
        XCTAssertNotEqual(other["identity"]?["id"]?.intValue, web, "a real label difference is another identity")

        let shared = try agent.getJSON("/v1/identity/\(web)")
        XCTAssertEqual(shared["references"], 2)
        XCTAssertEqual(shared["endpoints"], [1, 2])
        XCTAssertEqual(identityLabels(shared), ["k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"])
        XCTAssertEqual(try agent.getJSON("/v1/identity/\(db)")["references"], 2)
        let endpointLabels = Set(deployment[0]["labels"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        XCTAssertTrue(endpointLabels.contains("k8s:pod-template-hash=7d9f8c"), "the endpoint keeps all its labels")

        let allocated = (try agent.getJSON("/v1/identity").arrayValue ?? []).filter { ($0["id"]?.intValue ?? 0) >= 256 }
        XCTAssertEqual(allocated.count, 3, "five pods, three identities: \(allocated)")
        let byLabel = try agent.getJSON("/v1/identity?labels=k8s:app=web").arrayValue ?? []
        XCTAssertEqual(Set(byLabel.compactMap { $0["id"]?.intValue }), [web, other["identity"]?["id"]?.intValue ?? -1])
    }

    func testAnIdentityIsReleasedWithItsLastEndpoint() throws {
        let topology = try makeTopology()
        let a = try topology.addPod(namespace: "shop", name: "a", dualStack: false)
        let b = try topology.addPod(namespace: "shop", name: "b", dualStack: false)
        let agent = try startAgent(in: topology)
        let first = try agent.registerEndpoint(id: 1, pod: a, labels: ["k8s:app=web"])
        try agent.registerEndpoint(id: 2, pod: b, labels: ["k8s:app=web"])
        let id = try XCTUnwrap(first["identity"]?["id"]?.intValue)
        XCTAssertEqual(try agent.getJSON("/v1/identity/\(id)")["references"], 2)

        XCTAssertEqual(try agent.api(.DELETE, "/v1/endpoint/1").status, 200)
        let remaining = try agent.getJSON("/v1/identity/\(id)")
        XCTAssertEqual(remaining["references"], 1)
        XCTAssertEqual(remaining["endpoints"], [2])

        XCTAssertEqual(try agent.api(.DELETE, "/v1/endpoint/2").status, 200)
        assertAPIError(try agent.api(.GET, "/v1/identity/\(id)"), status: 404, code: "not-found")
        XCTAssertEqual(try agent.getJSON("/v1/identity?labels=k8s:app=web"), [])
        let allocated = (try agent.getJSON("/v1/identity").arrayValue ?? []).filter { ($0["id"]?.intValue ?? 0) >= 256 }
        XCTAssertEqual(allocated, [], "only reserved identities remain")
    }

    func testIdentitiesKeepTheirNumbersAcrossARestartAndACrash() throws {
        let topology = try makeTopology()
        let pods = try (0..<3).map { try topology.addPod(namespace: "shop", name: "p\($0)", dualStack: false) }
        let agent = try startAgent(in: topology)
        // A released identity before the survivors, so that renumbering from scratch would show.
        try agent.registerEndpoint(id: 1, pod: pods[0], labels: ["k8s:app=gone"])
        try agent.registerEndpoint(id: 2, pod: pods[1], labels: ["k8s:app=api"])
        try agent.registerEndpoint(id: 3, pod: pods[2], labels: ["k8s:app=db"])
        XCTAssertEqual(try agent.api(.DELETE, "/v1/endpoint/1").status, 200)
        try agent.importPolicies([
            networkPolicy(
                "shop", "db-from-api",
                spec: [
                    "endpointSelector": ["matchLabels": ["app": "db"]],
                    "ingress": [["fromEndpoints": [["matchLabels": ["app": "api"]]], "toPorts": ports(5432)]],
                ])
        ])

        func snapshot() throws -> (identities: JSON, endpoints: [Int64?], policy: JSON?, ipcache: [String: Int64]) {
            let identities = try agent.getJSON("/v1/identity")
            let endpoints = try [2, 3].map { try agent.getJSON("/v1/endpoint/\($0)")["identity"]?["id"]?.intValue }
            return (identities, endpoints, try agent.getJSON("/v1/endpoint/3/policy")["entries"], try agent.ipcache())
        }
        let before = try snapshot()
        XCTAssertFalse(before.endpoints.contains(nil))

        for (how, signal) in [("SIGTERM", SIGTERM), ("SIGKILL", SIGKILL)] {
            agent.kill(signal: signal)
            XCTAssertNotNil(agent.waitForExit(), how)
            try agent.start()
            let after = try snapshot()
            XCTAssertEqual(after.identities, before.identities, "identities and references after \(how)")
            XCTAssertEqual(after.endpoints, before.endpoints, "endpoints' identities after \(how)")
            XCTAssertEqual(after.policy, before.policy, "policy entries (by identity) after \(how)")
            XCTAssertEqual(after.ipcache, before.ipcache, "ipcache after \(how)")
        }

        // A new label set after the restarts gets a number no live identity has.
        let fresh = try agent.registerEndpoint(id: 1, pod: pods[0], labels: ["k8s:app=new"])
        let freshID = try XCTUnwrap(fresh["identity"]?["id"]?.intValue)
        XCTAssertFalse(before.endpoints.contains(freshID), "new identity \(freshID) collides with \(before.endpoints)")
    }

    func testNodectlIdentityListAndGet() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "shop", name: "a", dualStack: false)
        let agent = try startAgent(in: topology)
        let endpoint = try agent.registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=web"])
        let id = try XCTUnwrap(endpoint["identity"]?["id"]?.intValue)

        let table = try agent.nodectl("identity", "list")
        XCTAssertEqual(table.status, 0, table.stderr)
        for text in ["reserved:host", "reserved:world", "\(id)", "k8s:app=web"] {
            XCTAssertTrue(table.stdout.contains(text), "nodectl identity list shows \(text):\n\(table.stdout)")
        }
        let json = try agent.nodectl("-o", "json", "identity", "list")
        XCTAssertEqual(json.status, 0, json.stderr)
        XCTAssertEqual(try JSON.parse(json.stdout), try agent.getJSON("/v1/identity"))

        let get = try agent.nodectl("identity", "get", "\(id)")
        XCTAssertEqual(get.status, 0, get.stderr)
        XCTAssertTrue(get.stdout.contains("k8s:app=web"), get.stdout)
        XCTAssertTrue(get.stdout.contains("k8s:io.kubernetes.pod.namespace=shop"), get.stdout)
        let filtered = try agent.nodectl("-o", "json", "identity", "list", "--labels", "k8s:app=web")
        XCTAssertEqual(try JSON.parse(filtered.stdout).arrayValue?.compactMap { $0["id"]?.intValue }, [id])

        let missing = try agent.nodectl("identity", "get", "99999")
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("identity 99999 does not exist"), missing.stderr)
    }
}
