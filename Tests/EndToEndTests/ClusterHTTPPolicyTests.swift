import AgentAPI
import Foundation
import XCTest

/// The seed article's HTTP rules (`l7-policy-backend-api.yaml`, verbatim) in cluster mode: backend-api and its real
/// HTTP/1.1 server on node A, the clients on node B. Their identities are numbered in etcd and reach node A through
/// its identity and ipcache mirrors, so the per-rule peer sets node A's kernel decides requests by must follow
/// identities that appear, go away and change after the policy is in force, as its L3/L4 entries do.
final class ClusterHTTPPolicyTests: EndToEndTestCase {
    private struct Nodes {
        var cluster: ClusterTopology
        var a: AgentProcess
        var b: AgentProcess
        var nodeA: Topology { cluster.nodes[0] }
        var nodeB: Topology { cluster.nodes[1] }
    }

    /// backend-api on node A, endpoint 1, with its HTTP server on 8080.
    private func startBackend(on n: Nodes) throws -> (Pod, HTTPServer) {
        let backend = try n.nodeA.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        try n.a.registerEndpoint(id: 1, pod: backend, labels: ["k8s:app=backend-api"])
        return (backend, try HTTPServer(on: backend, port: 8080, agent: n.a, topology: n.nodeA))
    }

    /// Two nodes and a three-member etcd; identities nobody uses are released within about two seconds.
    private func makeNodes() throws -> Nodes {
        let cluster = try makeCluster(nodes: 2)
        let etcd = try makeEtcd(members: 3, on: cluster)
        let agents = try startClusterAgents(
            on: cluster, etcd: etcd, options: ["identity-gc-interval": "200ms", "identity-gc-grace": "1500ms"])
        return Nodes(cluster: cluster, a: agents[0], b: agents[1])
    }

    func testTheArticlesHTTPRulesHoldForPodsOfAnotherNodeAsTheirIdentitiesComeAndGo() throws {
        let n = try makeNodes()
        let (backend, server) = try startBackend(on: n)
        let url = "http://\(backend.ipv4):8080"

        // A web pod of node B holds a keep-alive connection from before the policy.
        let early = try n.nodeB.addPod(namespace: "web-tier", name: "web-early", dualStack: false)
        try n.b.registerEndpoint(id: 11, pod: early, labels: ["k8s:app=web-early"])
        try n.a.waitForRemoteEndpoints(1)
        let open = try KeepAliveSteps(
            from: early, to: backend, topology: n.nodeB,
            steps: ["GET /api/v1/admin/early", "wait", "GET /api/v1/admin/early"])
        try open.waitUntilServed(server, count: 1)

        // Imported on node B: the policy reaches node A through etcd.
        let imported = try n.b.nodectl("policy", "import", try fixture("l7-policy-backend-api.yaml"))
        XCTAssertEqual(imported.status, 0, imported.stderr)
        try waitForPolicy(from: n.b, on: [n.a, n.b])
        let printed = try open.resume()
        XCTAssertEqual(printed.first, "200", "before the policy: \(printed)")
        XCTAssertTrue(
            ["reset", "closed", "403"].contains(printed.last ?? ""),
            "the connection open when the rules arrived is not left unchecked: \(printed)")
        XCTAssertEqual(
            try server.requests(), ["GET /api/v1/admin/early"], "its second request never reached the server")

        // The clients appear on node B once the policy is in force.
        let web = try n.nodeB.addPod(namespace: "web-tier", name: "frontend", dualStack: false)
        let admin = try n.nodeB.addPod(namespace: "api-tier", name: "admin-tool", dualStack: false)
        let outsider = try n.nodeB.addPod(namespace: "data-tier", name: "postgres", dualStack: false)
        var identities: [String: Int64] = [:]
        for (id, pod) in [(12, web), (13, admin), (14, outsider)] {
            let endpoint = try n.b.registerEndpoint(id: id, pod: pod, labels: SeedPods.labels[pod.name]!)
            identities[pod.name] = try XCTUnwrap(endpoint["identity"]?["id"]?.intValue)
        }
        for pod in [web, admin, outsider] { try waitForRemote(pod, identity: identities[pod.name]!, on: n.a) }

        let publicGet = try curl(from: web, "\(url)/api/v1/public/x")
        XCTAssertEqual(publicGet.code, "200", "GET public from web-tier on node B: \(publicGet)")
        let adminGet = try curl(from: web, "\(url)/api/v1/admin/x")
        XCTAssertEqual(adminGet.code, "403", "GET admin from web-tier: \(adminGet)")
        XCTAssertEqual(adminGet.body, "Access denied\r\n")
        let webPost = try curl(from: web, "\(url)/api/v1/admin/x", post: "from=web")
        XCTAssertEqual(webPost.code, "403", "POST admin from web-tier: \(webPost)")
        XCTAssertEqual(webPost.body, "Access denied\r\n")
        let adminPost = try curl(from: admin, "\(url)/api/v1/admin/x", post: "from=admin")
        XCTAssertEqual(adminPost.code, "200", "POST admin from admin-tool on node B: \(adminPost)")
        let dropped = try curl(from: outsider, "\(url)/api/v1/public/x", timeout: 2)
        XCTAssertEqual(dropped.exit, 28, "a pod outside both is dropped at L4 (curl times out): \(dropped)")
        XCTAssertEqual(
            try server.requests(), ["GET /api/v1/admin/early", "GET /api/v1/public/x", "POST /api/v1/admin/x"],
            "only the allowed requests reached the server")

        // Node A's flows name the remote pods by their cluster identities and labels.
        let flows = try n.a.waitForFlows(timeout: 5) { flows in
            flows.filter { $0["l7"] != nil }.count >= 4
        }.filter { $0["l7"] != nil }
        func decision(_ method: String, from pod: Pod, verdict: String) -> JSON? {
            flows.first {
                $0["source"]?["ip"]?.stringValue == pod.ipv4 && $0["verdict"]?.stringValue == verdict
                    && $0["l7"]?["http"]?["method"]?.stringValue == method
                    && $0["l7"]?["http"]?["url"]?.stringValue == "/api/v1/admin/x"
            }
        }
        let refused = try XCTUnwrap(decision("GET", from: web, verdict: "DROPPED"), "\(flows)")
        XCTAssertEqual(refused["source"]?["identity"]?.intValue, identities["frontend"])
        let webLabels = refused["source"]?["labels"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertTrue(webLabels.contains("k8s:app=frontend"), "\(webLabels)")
        XCTAssertTrue(webLabels.contains("k8s:io.kubernetes.pod.namespace=web-tier"), "\(webLabels)")
        let allowed = try XCTUnwrap(decision("POST", from: admin, verdict: "FORWARDED"), "\(flows)")
        XCTAssertEqual(allowed["source"]?["identity"]?.intValue, identities["admin-tool"])
        let adminLabels = allowed["source"]?["labels"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertTrue(adminLabels.contains("k8s:role=admin-tool"), "\(adminLabels)")

        // The admin tool goes away: its identity is released in etcd, node A forgets it and its HTTP peer entry.
        let oldAdmin = try XCTUnwrap(identities["admin-tool"])
        XCTAssertTrue(try l7Peers(of: n.a).contains(oldAdmin), "the admin tool's rules are in node A's kernel")
        let deleted = try n.b.api(.DELETE, "/v1/endpoint/13")
        XCTAssertTrue((200..<300).contains(deleted.status), "DELETE /v1/endpoint/13 on node B: \(deleted)")
        try waitForIdentity(oldAdmin, known: false, on: n.a, timeout: 15)
        try eventually("node A's kernel no longer lists \(oldAdmin) as an HTTP peer") {
            try !l7Peers(of: n.a).contains(oldAdmin)
        }

        // The number is free again and the lowest: the next new label set gets it, and with it none of the admin
        // tool's rights on node A.
        let reuser = try n.nodeB.addPod(namespace: "data-tier", name: "reuser", dualStack: false)
        let reused = try XCTUnwrap(
            try n.b.registerEndpoint(id: 17, pod: reuser, labels: ["k8s:app=reuser"])["identity"]?["id"]?.intValue)
        XCTAssertEqual(reused, oldAdmin, "the admin tool's former number is reused")
        try waitForRemote(reuser, identity: reused, on: n.a)
        let reuserPost = try curl(from: reuser, "\(url)/api/v1/admin/x", post: "from=reuser", timeout: 2)
        XCTAssertEqual(reuserPost.exit, 28, "the reused number is outside both peer sets: \(reuserPost)")

        // A new pod with the admin tool's labels, on node B: allowed again under its new number.
        let admin2 = try n.nodeB.addPod(namespace: "api-tier", name: "admin-tool-2", dualStack: false)
        let endpoint = try n.b.registerEndpoint(id: 15, pod: admin2, labels: ["k8s:role=admin-tool"])
        let newAdmin = try XCTUnwrap(endpoint["identity"]?["id"]?.intValue)
        try waitForRemote(admin2, identity: newAdmin, on: n.a)
        let again = try curl(from: admin2, "\(url)/api/v1/admin/y", post: "from=admin-2")
        XCTAssertEqual(again.code, "200", "POST admin from the new admin-tool pod (identity \(newAdmin)): \(again)")
        XCTAssertEqual(try curl(from: web, "\(url)/api/v1/admin/y", post: "from=web").code, "403")

        // Its labels change: without the admin role it is outside both peer sets, with it back it is allowed.
        try patchLabels(of: 15, on: n.b, ["delete": ["k8s:role=admin-tool"]])
        let plain = try XCTUnwrap(try n.b.getJSON("/v1/endpoint/15")["identity"]?["id"]?.intValue)
        XCTAssertNotEqual(plain, newAdmin)
        try waitForRemote(admin2, identity: plain, on: n.a)
        let demoted = try curl(from: admin2, "\(url)/api/v1/admin/z", post: "from=plain", timeout: 2)
        XCTAssertEqual(demoted.exit, 28, "without role=admin-tool it is dropped at L4: \(demoted)")
        try patchLabels(of: 15, on: n.b, ["add": ["k8s:role=admin-tool"]])
        let restored = try XCTUnwrap(try n.b.getJSON("/v1/endpoint/15")["identity"]?["id"]?.intValue)
        try waitForRemote(admin2, identity: restored, on: n.a)
        let promoted = try curl(from: admin2, "\(url)/api/v1/admin/z", post: "from=admin-again")
        XCTAssertEqual(promoted.code, "200", "with role=admin-tool again: \(promoted)")

        // An HTTP rule with its own fromEndpoints under an item open to any peer: the port's L3/L4 entry is the
        // wildcard, which no new identity changes, but the rule's peers are identities; one that appears later on
        // node B must still get the rule.
        let answer = try n.b.api(.PUT, "/v1/policy", Self.lateRulePolicy)
        XCTAssertEqual(answer.status, 200, "\(answer)")
        try waitForPolicy(from: n.b, on: [n.a, n.b])
        let late = try n.nodeB.addPod(namespace: "api-tier", name: "late-client", dualStack: false)
        let lateEndpoint = try n.b.registerEndpoint(id: 16, pod: late, labels: ["k8s:app=late-client"])
        try waitForRemote(late, identity: try XCTUnwrap(lateEndpoint["identity"]?["id"]?.intValue), on: n.a)
        let lateGet = try curl(from: late, "\(url)/api/v1/late/x")
        XCTAssertEqual(lateGet.code, "200", "the late rule's peer, appeared after the rule: \(lateGet)")
        let lateAdmin = try curl(from: late, "\(url)/api/v1/admin/x")
        XCTAssertEqual(lateAdmin.code, "403", "only its rule: \(lateAdmin)")
        XCTAssertEqual(try curl(from: web, "\(url)/api/v1/late/x").code, "403", "not the web tier's rule")

        // The peer's identity is read for each request: a label change on node B reaches the next request of a
        // keep-alive connection already open to node A (the port stays open at L3/L4, only the rule is lost).
        let kept = try KeepAliveSteps(
            from: late, to: backend, topology: n.nodeB,
            steps: ["GET /api/v1/late/kept", "wait", "GET /api/v1/late/kept"])
        try kept.waitUntilServed(server, count: 7)
        try patchLabels(of: 16, on: n.b, ["delete": ["k8s:app=late-client"], "add": ["k8s:app=late-other"]])
        let relabelled = try XCTUnwrap(try n.b.getJSON("/v1/endpoint/16")["identity"]?["id"]?.intValue)
        try waitForRemote(late, identity: relabelled, on: n.a)
        XCTAssertEqual(try kept.resume(), ["200", "403"], "the open connection's next request, under the new labels")

        XCTAssertEqual(
            try server.requests(),
            [
                "GET /api/v1/admin/early", "GET /api/v1/public/x", "POST /api/v1/admin/x", "POST /api/v1/admin/y",
                "POST /api/v1/admin/z", "GET /api/v1/late/x", "GET /api/v1/late/kept",
            ], "only the allowed requests reached the server")
    }

    /// Port 8080 of backend-api open to any peer at L3/L4, with one HTTP rule for `app=late-client` only.
    private static let lateRulePolicy: JSON = [
        "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": ["name": "late-client", "namespace": "api-tier"],
        "spec": [
            "endpointSelector": ["matchLabels": ["app": "backend-api"]],
            "ingress": [
                [
                    "toPorts": [
                        [
                            "ports": [["port": "8080", "protocol": "TCP"]],
                            "rules": [
                                "http": [
                                    [
                                        "method": "GET", "path": "/api/v1/late/.*",
                                        "fromEndpoints": [["matchLabels": ["app": "late-client"]]],
                                    ]
                                ]
                            ],
                        ]
                    ]
                ]
            ],
        ],
    ]

    /// Identity numbers are reused (the lowest free one): the admin tool's number, released while node A's agent
    /// was stopped, goes to a pod outside both peer sets. Node A's list on its return names the number with other
    /// labels than it knew: the new labels hold, not the admin tool's rights.
    func testANumberReleasedAndReusedWhileANodeWasAwayLosesItsFormerRights() throws {
        let n = try makeNodes()
        let (backend, server) = try startBackend(on: n)
        let url = "http://\(backend.ipv4):8080/api/v1/admin/x"
        let imported = try n.a.nodectl("policy", "import", try fixture("l7-policy-backend-api.yaml"))
        XCTAssertEqual(imported.status, 0, imported.stderr)
        try waitForPolicy(from: n.a, on: [n.a, n.b])
        let admin = try n.nodeB.addPod(namespace: "api-tier", name: "admin-tool", dualStack: false)
        let adminID = try XCTUnwrap(
            try n.b.registerEndpoint(id: 11, pod: admin, labels: ["k8s:role=admin-tool"])["identity"]?["id"]?.intValue)
        try waitForRemote(admin, identity: adminID, on: n.a)
        XCTAssertEqual(try curl(from: admin, url, post: "from=admin").code, "200")

        XCTAssertNotNil(n.a.stop(), "node A's agent stopped")
        let deleted = try n.b.api(.DELETE, "/v1/endpoint/11")
        XCTAssertTrue((200..<300).contains(deleted.status), "\(deleted)")
        try waitForIdentity(adminID, known: false, on: n.b, timeout: 15)
        let intruder = try n.nodeB.addPod(namespace: "data-tier", name: "intruder", dualStack: false)
        let intruderID = try XCTUnwrap(
            try n.b.registerEndpoint(id: 12, pod: intruder, labels: ["k8s:app=intruder"])["identity"]?["id"]?.intValue)
        XCTAssertEqual(intruderID, adminID, "the lowest free number is the admin tool's former one")

        try n.a.start()
        try waitForRemote(intruder, identity: intruderID, on: n.a)
        try eventually("node A knows identity \(intruderID) by its new labels") {
            let labels = try n.a.getJSON("/v1/identity/\(intruderID)")["labels"]?.arrayValue ?? []
            return labels.contains("k8s:app=intruder")
        }
        let answer = try curl(from: intruder, url, post: "from=intruder", timeout: 2)
        XCTAssertEqual(answer.exit, 28, "outside both peer sets, dropped at L4: \(answer)")
        XCTAssertEqual(try server.requests(), ["POST /api/v1/admin/x"], "only the admin tool's request was served")
    }

    // MARK: - Helpers

    /// Waits until every agent runs the revision `writer` answered a policy change with (it shows it once applied).
    private func waitForPolicy(from writer: AgentProcess, on agents: [AgentProcess], timeout: TimeInterval = 10)
        throws
    {
        let revision = try XCTUnwrap(try writer.getJSON("/v1/policy")["revision"]?.intValue)
        for agent in agents {
            try eventually("policy revision \(revision)", timeout: timeout) {
                try agent.getJSON("/v1/policy")["revision"]?.intValue == revision
            }
            try agent.waitForPolicyRevision()
        }
    }

    /// Waits until `agent` knows `pod` of another node: its identity, and its ipcache entry giving that identity.
    private func waitForRemote(_ pod: Pod, identity: Int64, on agent: AgentProcess) throws {
        try waitForIdentity(identity, known: true, on: agent)
        try eventually("\(pod) with identity \(identity) in the ipcache") {
            let entry = try agent.api(.GET, "/v1/ipcache/\(pod.ipv4)").json
            return entry?["identity"]?.intValue == identity && entry?["source"]?.stringValue == "remote"
        }
    }

    /// Waits until `agent` knows identity `id` (`known`) or no longer does.
    private func waitForIdentity(_ id: Int64, known: Bool, on agent: AgentProcess, timeout: TimeInterval = 10) throws {
        try eventually("identity \(id) \(known ? "learned" : "forgotten")", timeout: timeout) {
            try agent.api(.GET, "/v1/identity/\(id)").status == (known ? 200 : 404)
        }
    }

    private func patchLabels(of endpoint: Int, on agent: AgentProcess, _ body: JSON) throws {
        let answer = try agent.api(.PATCH, "/v1/endpoint/\(endpoint)/labels", body)
        XCTAssertEqual(answer.status, 200, "PATCH /v1/endpoint/\(endpoint)/labels: \(answer)")
    }

    /// The peer identities of every ruleset in the agent's pinned `na_l7_peers`, read with bpftool: what the
    /// kernel decides requests by, not what the agent meant to write.
    private func l7Peers(of agent: AgentProcess) throws -> Set<Int64> {
        Set(
            try BPFTool.dump("\(agent.bpfRoot)/na_l7_peers").map { entry in
                entry.key[4..<8].reversed().reduce(Int64(0)) { $0 << 8 | Int64($1) }
            })
    }

    private func eventually(_ what: String, timeout: TimeInterval = 10, _ condition: () throws -> Bool) throws {
        let deadline = Date() + timeout
        while Date() < deadline {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw AgentHarnessError("timed out waiting for \(what)")
    }
}
