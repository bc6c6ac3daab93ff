import AgentAPI
import Foundation
import Glibc
import XCTest

/// The seed article's L7 policy (`l7-policy-backend-api.yaml`, applied verbatim) decided in the kernel: backend-api
/// runs a real HTTP/1.1 server in the agent's cgroup, where the agent's sockops program enrolls its connections; web
/// and admin pods send real requests with curl. The server's access log proves a refused request never reached it.
final class HTTPPolicyTests: EndToEndTestCase {
    private struct Setup {
        var topology: Topology
        var agent: AgentProcess
        var backend: Pod
        var frontend: Pod
        var webOther: Pod
        var admin: Pod
        var outsider: Pod
        var server: HTTPServer
    }

    private func makeSetup(importPolicy: Bool = true, acceptDelay: Double = 0) throws -> Setup {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        let backend = try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        let frontend = try topology.addPod(namespace: "web-tier", name: "frontend", dualStack: false)
        let webOther = try topology.addPod(namespace: "web-tier", name: "web-other", dualStack: false)
        let admin = try topology.addPod(namespace: "api-tier", name: "admin-tool", dualStack: false)
        let outsider = try topology.addPod(namespace: "data-tier", name: "postgres", dualStack: false)
        for (id, pod) in [backend, frontend, webOther, admin, outsider].enumerated() {
            _ = try agent.registerEndpoint(id: id + 1, pod: pod, labels: SeedPods.labels[pod.name]!)
        }
        let server = try HTTPServer(
            on: backend, port: 8080, agent: agent, topology: topology, acceptDelay: acceptDelay)
        if importPolicy { try self.importPolicy(agent) }
        return Setup(
            topology: topology, agent: agent, backend: backend, frontend: frontend, webOther: webOther, admin: admin,
            outsider: outsider, server: server)
    }

    /// The article's promises, one request each, and the server's log of what reached it.
    func testTheArticlesPolicyDecidesEachRequestInTheKernel() throws {
        let s = try makeSetup()
        let url = "http://\(s.backend.ipv4):8080"
        let publicGet = try curl(from: s.frontend, "\(url)/api/v1/public/items")
        XCTAssertEqual(publicGet.code, "200", "GET public from web-tier: \(publicGet)")
        let otherGet = try curl(from: s.webOther, "\(url)/api/v1/public/other")
        XCTAssertEqual(otherGet.code, "200", "any web-tier pod: \(otherGet)")
        let adminGet = try curl(from: s.frontend, "\(url)/api/v1/admin/users")
        XCTAssertEqual(adminGet.code, "403", "GET admin from web-tier: \(adminGet)")
        XCTAssertEqual(adminGet.body, "Access denied\r\n")
        let webPost = try curl(from: s.frontend, "\(url)/api/v1/admin/users", post: "name=x")
        XCTAssertEqual(webPost.code, "403", "POST admin from web-tier: \(webPost)")
        let adminPost = try curl(from: s.admin, "\(url)/api/v1/admin/users", post: "name=y")
        XCTAssertEqual(adminPost.code, "200", "POST admin from admin-tool: \(adminPost)")
        let adminPublic = try curl(from: s.admin, "\(url)/api/v1/public/items")
        XCTAssertEqual(adminPublic.code, "200", "GET public from admin-tool: \(adminPublic)")
        let query = try curl(from: s.frontend, "\(url)/api/v1/publicx")
        XCTAssertEqual(query.code, "403", "the whole path must match: \(query)")
        let outsider = try curl(from: s.outsider, "\(url)/api/v1/public/items", timeout: 2)
        XCTAssertEqual(outsider.exit, 28, "a pod outside both is dropped at L4 (curl times out): \(outsider)")

        let log = try s.server.requests()
        XCTAssertEqual(
            log,
            [
                "GET /api/v1/public/items", "GET /api/v1/public/other", "POST /api/v1/admin/users",
                "GET /api/v1/public/items",
            ], "only the allowed requests reached the server")

        // Every decision is a flow with its HTTP part.
        let flows = try s.agent.flows("last=10000").filter { $0["l7"] != nil }
        let denied = flows.filter { $0["verdict"] == "DROPPED" }
        XCTAssertTrue(
            denied.contains { $0["l7"]?["http"]?["url"]?.stringValue?.contains("/api/v1/admin/users") ?? false },
            "a dropped l7 flow for the refused request: \(flows)")
        XCTAssertTrue(
            flows.contains { $0["verdict"] == "FORWARDED" && $0["l7"]?["http"]?["method"] == "POST" },
            "a forwarded l7 flow for the admin tool's POST: \(flows)")
    }

    private func importPolicy(_ agent: AgentProcess) throws {
        let imported = try agent.nodectl("policy", "import", try fixture("l7-policy-backend-api.yaml"))
        XCTAssertEqual(imported.status, 0, imported.stderr)
    }

    /// A keep-alive connection accepted before the port had HTTP rules is not left unchecked: it is reset when
    /// the rules arrive, and the client's next connection is decided request by request.
    func testAConnectionAcceptedBeforeTheRulesIsResetNotLeftUnchecked() throws {
        let s = try makeSetup(importPolicy: false)
        let client = try KeepAliveSteps(
            from: s.frontend, to: s.backend, topology: s.topology,
            steps: ["GET /api/v1/admin/users", "wait", "GET /api/v1/admin/users"])
        // The first request went through before any policy.
        try client.waitUntilServed(s.server, count: 1)
        XCTAssertEqual(try s.server.requests(), ["GET /api/v1/admin/users"])
        try importPolicy(s.agent)
        let printed = try client.resume()
        XCTAssertEqual(printed.first, "200", "\(printed)")
        XCTAssertTrue(
            ["reset", "closed", "403"].contains(printed.last ?? ""),
            "the old connection's second request is refused or the connection is gone: \(printed)")
        XCTAssertEqual(
            try s.server.requests(), ["GET /api/v1/admin/users"], "the second request never reached the server")
        XCTAssertEqual(try curl(from: s.frontend, "http://\(s.backend.ipv4):8080/api/v1/admin/users").code, "403")
    }

    /// SIGKILL while a keep-alive connection is open: the kernel goes on deciding its requests with the agent gone
    /// (programs and maps are pinned), new connections too, and so after the restart.
    func testRequestsAreDecidedWhileTheAgentIsDownAndAfterItRestarts() throws {
        let s = try makeSetup()
        let client = try KeepAliveSteps(
            from: s.frontend, to: s.backend, topology: s.topology,
            steps: ["GET /api/v1/public/before", "wait", "GET /api/v1/public/during", "GET /api/v1/admin/during"])
        try client.waitUntilServed(s.server, count: 1)
        s.agent.kill(signal: SIGKILL)
        XCTAssertNotNil(s.agent.waitForExit(timeout: 10), "the agent is gone")
        let printed = try client.resume()
        XCTAssertEqual(printed, ["200", "200", "403"], "the open connection, decided with the agent down")
        let url = "http://\(s.backend.ipv4):8080"
        XCTAssertEqual(try curl(from: s.frontend, "\(url)/api/v1/public/new").code, "200", "a new connection")
        XCTAssertEqual(try curl(from: s.frontend, "\(url)/api/v1/admin/new").code, "403")
        try s.agent.start()
        XCTAssertEqual(try s.agent.getJSON("/v1/healthz")["l7"]?["state"], "running")
        XCTAssertEqual(try curl(from: s.frontend, "\(url)/api/v1/admin/after").code, "403", "after the restart")
        XCTAssertEqual(try curl(from: s.frontend, "\(url)/api/v1/public/after").code, "200")
        XCTAssertEqual(
            try s.server.requests(),
            [
                "GET /api/v1/public/before", "GET /api/v1/public/during", "GET /api/v1/public/new",
                "GET /api/v1/public/after",
            ])
    }

    /// A request that arrives before the server accepted its connection is decided once the socket is accepted
    /// (the stream parser runs then): the 403 comes when the server accepts, and the request never reaches it.
    func testARequestSentBeforeTheServerAcceptsIsRefusedWhenItAccepts() throws {
        let s = try makeSetup(acceptDelay: 2)
        let answer = try curl(from: s.frontend, "http://\(s.backend.ipv4):8080/api/v1/admin/users", timeout: 8)
        XCTAssertEqual(answer.code, "403", "\(answer)")
        XCTAssertEqual(answer.body, "Access denied\r\n")
        XCTAssertEqual(try s.server.requests(), [], "the refused request never reached the server")
    }

    /// After the 403 the connection is closed by the agent even when the client keeps it open: every later byte
    /// would be dropped anyway, and the server should not hold a dead connection.
    func testARefusedRequestsConnectionIsClosedAfterThe403() throws {
        let s = try makeSetup()
        let directory = try s.topology.run.temporaryDirectory("refused")
        let script = "\(directory)/client.py"
        try Self.lingeringClient.write(toFile: script, atomically: true, encoding: .utf8)
        let result = try Shell.capture(
            ["nsenter", "--net=\(Netns.path(s.frontend.netns))", "--", "python3", script, s.backend.ipv4, "8080"],
            timeout: 15)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "403", "\(result)")
        XCTAssertTrue(lines.last == "closed" || lines.last == "reset", "the connection ends: \(result)")
        let seconds = Double(lines.dropFirst().first ?? "") ?? 99
        XCTAssertLessThan(seconds, 2, "closed within a moment of the 403: \(result)")
    }

    /// Sends a refused request, reads the answer's head and keeps the connection open: prints the status, the
    /// seconds until the connection ended, and "closed" or "reset" (or "open" after 5 s). The request is short:
    /// its 403 (written over the request's bytes) has no body.
    static let lingeringClient = """
        import socket, sys, time
        ip, port = sys.argv[1], int(sys.argv[2])
        s = socket.create_connection((ip, port), timeout=5)
        s.sendall(f"GET /api/v1/admin/users HTTP/1.1\\r\\nHost: {ip}\\r\\n\\r\\n".encode())
        data = b""
        while b"\\r\\n\\r\\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        print(data.split(b" ")[1].decode() if data else "none", flush=True)
        started = time.monotonic()
        outcome = "open"
        try:
            while time.monotonic() - started < 5:
                if not s.recv(4096):
                    outcome = "closed"
                    break
        except ConnectionResetError:
            outcome = "reset"
        except socket.timeout:
            pass
        print(f"{time.monotonic() - started:.3f}", flush=True)
        print(outcome, flush=True)
        """

    /// Deleting the policy takes the HTTP rules out of the kernel at once: the refused request passes.
    func testAPolicyChangeReachesRequestsAtOnce() throws {
        let s = try makeSetup()
        let url = "http://\(s.backend.ipv4):8080/api/v1/admin/users"
        XCTAssertEqual(try curl(from: s.frontend, url).code, "403")
        XCTAssertEqual(try s.agent.api(.DELETE, "/v1/policy?all=true").status, 200)
        XCTAssertEqual(try curl(from: s.frontend, url).code, "200", "no policy: no HTTP rule")
    }

    /// `headers` (present, names in any case) and `headerMatches` (exact value), and `host`, decided in the kernel.
    func testHeaderAndHostRequirementsAreDecidedInTheKernel() throws {
        let s = try makeSetup(importPolicy: false)
        let policy: JSON = [
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": ["name": "headers", "namespace": "api-tier"],
            "spec": [
                "endpointSelector": ["matchLabels": ["app": "backend-api"]],
                "ingress": [
                    [
                        "fromEndpoints": [["matchLabels": ["k8s:io.kubernetes.pod.namespace": "web-tier"]]],
                        "toPorts": [
                            [
                                "ports": [["port": "8080", "protocol": "TCP"]],
                                "rules": [
                                    "http": [
                                        [
                                            "method": "GET", "path": "/h/.*", "host": "api\\.example\\.com",
                                            "headers": ["X-Token"],
                                            "headerMatches": [["name": "X-Env", "value": "prod"]],
                                        ]
                                    ]
                                ],
                            ]
                        ],
                    ]
                ],
            ],
        ]
        XCTAssertEqual(try s.agent.api(.PUT, "/v1/policy", policy).status, 200)
        let url = "http://\(s.backend.ipv4):8080/h/x"
        let host = "Host: api.example.com"
        XCTAssertEqual(try curl(from: s.frontend, url, headers: [host, "X-Token: t", "X-Env: prod"]).code, "200")
        XCTAssertEqual(
            try curl(from: s.frontend, url, headers: [host, "x-token: t", "x-env: prod"]).code, "200",
            "header names in any case")
        XCTAssertEqual(try curl(from: s.frontend, url, headers: [host, "X-Env: prod"]).code, "403", "no X-Token")
        XCTAssertEqual(
            try curl(from: s.frontend, url, headers: [host, "X-Token: t", "X-Env: production"]).code, "403",
            "the value must be exact")
        XCTAssertEqual(
            try curl(from: s.frontend, url, headers: ["Host: other.example.com", "X-Token: t", "X-Env: prod"]).code,
            "403", "another host")
        XCTAssertEqual(try s.server.requests(), ["GET /h/x", "GET /h/x"])
    }

    /// healthz and `nodectl status` say HTTP rules are enforced in the kernel.
    func testTheStatusNamesTheKernelEnforcement() throws {
        let s = try makeSetup(importPolicy: false)
        let health = try s.agent.getJSON("/v1/healthz")
        XCTAssertEqual(health["l7"]?["state"], "running", "\(health["l7"] ?? nil)")
        let status = try s.agent.nodectl("status")
        XCTAssertTrue(status.stdout.contains("enforced in the kernel"), status.stdout)
    }

    /// When the start-up self-test fails (here: the sockops program attached to a cgroup the agent is not in, so
    /// its test connection is never enrolled), HTTP rules are refused with 501 naming why, the status says so,
    /// and policies without HTTP rules still apply: never an L4-only fallback.
    func testHTTPRulesAreRefusedByNameWhenTheSelfTestFails() throws {
        let topology = try makeTopology()
        let elsewhere = try TestCgroup.create("na\(topology.tag)-elsewhere")
        defer { TestCgroup.remove(elsewhere) }
        // The last --cgroup-root wins over the one the harness passes (and runs the agent in).
        let agent = try startAgent(in: topology, extraArguments: ["--cgroup-root", elsewhere])
        let health = try agent.getJSON("/v1/healthz")
        XCTAssertEqual(health["l7"]?["state"], "unavailable", "\(health["l7"] ?? nil)")
        let reason = health["l7"]?["reason"]?.stringValue ?? ""
        XCTAssertTrue(reason.contains("self-test"), reason)
        let imported = try agent.nodectl("policy", "import", try fixture("l7-policy-backend-api.yaml"))
        XCTAssertNotEqual(imported.status, 0)
        XCTAssertTrue(imported.stderr.contains("cannot be enforced"), imported.stderr)
        let answer = try agent.api(.GET, "/v1/policy")
        XCTAssertEqual(answer.json?["policies"]?.arrayValue?.count ?? 0, 0, "nothing of it applied: \(answer)")
        let status = try agent.nodectl("status")
        XCTAssertTrue(status.stdout.contains("refused:"), status.stdout)
        let plain = try agent.nodectl("policy", "import", try fixture("allow-traffic-policy.yaml"))
        XCTAssertEqual(plain.status, 0, plain.stderr)
    }
}
