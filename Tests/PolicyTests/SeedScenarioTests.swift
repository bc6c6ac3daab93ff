import AgentAPI
import XCTest

@testable import Policy

/// The seed article's scenario: its default-deny and allow policies applied verbatim, checked against every flow
/// the article describes.
final class SeedScenarioTests: XCTestCase {
    var repo = PolicyRepository()
    var allocator = IdentityAllocator()
    var frontend = Identity(id: 0, labels: LabelSet())
    var backend = Identity(id: 0, labels: LabelSet())
    var postgres = Identity(id: 0, labels: LabelSet())
    var otherWeb = Identity(id: 0, labels: LabelSet())
    var adminTool = Identity(id: 0, labels: LabelSet())

    override func setUpWithError() throws {
        repo = try repository(SeedFixtures.defaultDenyAll, SeedFixtures.allowTraffic)
        frontend = try allocator.acquire(
            labels("k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=web-tier", "k8s:pod-template-hash=5d8f"))
        backend = try allocator.acquire(labels("k8s:app=backend-api", "k8s:io.kubernetes.pod.namespace=api-tier"))
        postgres = try allocator.acquire(
            labels("k8s:app=postgres", "k8s:tenant-id=t1", "k8s:io.kubernetes.pod.namespace=data-tier"))
        otherWeb = try allocator.acquire(labels("k8s:app=cache", "k8s:io.kubernetes.pod.namespace=web-tier"))
        adminTool = try allocator.acquire(labels("k8s:role=admin-tool", "k8s:io.kubernetes.pod.namespace=ops"))
    }

    private func resolve(_ identity: Identity) -> EndpointPolicy {
        repo.resolve(endpoint: identity.labels, identities: allocator.identities, mode: .default)
    }

    private func trace(_ src: Identity, _ dst: Identity, _ port: UInt16, proto: UInt8 = 6) -> TraceResult {
        repo.trace(
            from: TracePeer(identity: src.id, labels: src.labels), to: TracePeer(identity: dst.id, labels: dst.labels),
            proto: proto, dport: port, identities: allocator.identities, mode: .default)
    }

    private func ruleID(_ name: String) throws -> UInt32 {
        try XCTUnwrap(repo.ruleNames.first { $0.value == name }?.key, "no rule named \(name)")
    }

    func testSevenDocumentsAreStoredWithRuleNames() throws {
        XCTAssertEqual(repo.documents.count, 7)
        XCTAssertEqual(repo.revision, 3)
        XCTAssertEqual(
            Set(repo.ruleNames.values),
            [
                "web-tier/allow-frontend-to-backend egress[0]", "api-tier/allow-backend-to-database egress[0]",
                "api-tier/allow-ingress-to-backend ingress[0]", "data-tier/allow-ingress-to-database ingress[0]",
            ])
    }

    func testResolvedEntries() throws {
        let toBackend = try ruleID("web-tier/allow-frontend-to-backend egress[0]")
        let toDatabase = try ruleID("api-tier/allow-backend-to-database egress[0]")
        let intoBackend = try ruleID("api-tier/allow-ingress-to-backend ingress[0]")
        let intoDatabase = try ruleID("data-tier/allow-ingress-to-database ingress[0]")

        let f = resolve(frontend)
        XCTAssertTrue(f.ingressEnforced)
        XCTAssertTrue(f.egressEnforced)
        XCTAssertEqual(
            f.entries,
            [
                PolicyEntry(
                    identity: backend.id, direction: .egress, proto: tcp, port: 8080, portPrefixBits: 16,
                    ruleIDs: [toBackend])
            ])
        XCTAssertEqual(f.entries[0].prefixLength, 64)

        let b = resolve(backend)
        XCTAssertTrue(b.ingressEnforced && b.egressEnforced)
        XCTAssertEqual(
            b.entries,
            [
                PolicyEntry(identity: frontend.id, direction: .ingress, ruleIDs: [intoBackend]),
                PolicyEntry(
                    identity: postgres.id, direction: .egress, proto: tcp, port: 5432, portPrefixBits: 16,
                    ruleIDs: [toDatabase]),
            ])
        XCTAssertEqual(b.entries[0].prefixLength, 40)

        let p = resolve(postgres)
        XCTAssertTrue(p.ingressEnforced && p.egressEnforced)
        XCTAssertEqual(p.entries, [PolicyEntry(identity: backend.id, direction: .ingress, ruleIDs: [intoDatabase])])

        let o = resolve(otherWeb)
        XCTAssertTrue(o.ingressEnforced && o.egressEnforced)
        XCTAssertEqual(o.entries, [])

        // The admin tool's namespace has no policy: nothing is enforced for it.
        let a = resolve(adminTool)
        XCTAssertFalse(a.ingressEnforced || a.egressEnforced)
        XCTAssertEqual(a.entries, [])
    }

    func testFlowMatrix() {
        let cases: [(String, Identity, Identity, UInt16, PolicyDecision.Verdict)] = [
            ("frontend -> backend-api:8080", frontend, backend, 8080, .allowed),
            ("frontend -> backend-api:9090", frontend, backend, 9090, .denied),
            ("frontend -> postgres:5432", frontend, postgres, 5432, .denied),
            ("postgres -> backend-api:8080", postgres, backend, 8080, .denied),
            ("other web-tier pod -> backend-api:8080", otherWeb, backend, 8080, .denied),
            ("backend-api -> postgres:5432", backend, postgres, 5432, .allowed),
            ("backend-api -> postgres:5433", backend, postgres, 5433, .denied),
            ("admin-tool -> backend-api:8080", adminTool, backend, 8080, .denied),
            ("backend-api -> frontend:80", backend, frontend, 80, .denied),
        ]
        for (name, src, dst, port, expected) in cases {
            XCTAssertEqual(trace(src, dst, port).verdict, expected, name)
        }
        // UDP to the allowed TCP port is not allowed.
        XCTAssertEqual(trace(frontend, backend, 8080, proto: udp).verdict, .denied)
    }

    func testTraceReasonsNameTheDecidingRules() {
        let allowed = trace(frontend, backend, 8080)
        XCTAssertEqual(allowed.egress.rules, ["web-tier/allow-frontend-to-backend egress[0]"])
        XCTAssertEqual(allowed.ingress.rules, ["api-tier/allow-ingress-to-backend ingress[0]"])
        XCTAssertEqual(allowed.egress.decision.reason, .allowRule)
        XCTAssertTrue(
            allowed.reason.contains("allowed by web-tier/allow-frontend-to-backend egress[0]"), allowed.reason)

        let wrongPort = trace(frontend, backend, 9090)
        XCTAssertEqual(wrongPort.egress.decision.reason, .noRuleAllows)
        XCTAssertEqual(wrongPort.egress.rules, [])
        XCTAssertTrue(wrongPort.reason.hasPrefix("egress of the source: no rule allows egress"), wrongPort.reason)
        // The destination's ingress alone would have let the flow in.
        XCTAssertEqual(wrongPort.ingress.decision.verdict, .allowed)

        let reverse = trace(postgres, backend, 8080)
        XCTAssertEqual(reverse.egress.decision.reason, .noRuleAllows)
        XCTAssertEqual(reverse.ingress.decision.reason, .noRuleAllows)

        let admin = trace(adminTool, backend, 8080)
        XCTAssertEqual(admin.egress.decision.reason, .notEnforced)
        XCTAssertFalse(admin.egress.enforced)
        XCTAssertEqual(admin.ingress.decision.reason, .noRuleAllows)
        XCTAssertTrue(admin.reason.hasPrefix("ingress of the destination"), admin.reason)

        XCTAssertEqual(allowed.json["verdict"], "allowed")
        XCTAssertEqual(allowed.json["egress"]?["rules"], ["web-tier/allow-frontend-to-backend egress[0]"])
    }

    func testTrafficToTheInternetIsDroppedForFrontend() {
        let world = Identity(id: ReservedIdentity.world, labels: ReservedIdentity.labels(of: ReservedIdentity.world)!)
        let result = repo.trace(
            from: TracePeer(identity: frontend.id, labels: frontend.labels),
            to: TracePeer(identity: world.id, labels: world.labels, isLocalEndpoint: false),
            proto: tcp, dport: 443, identities: allocator.identities, mode: .default)
        XCTAssertEqual(result.verdict, .denied)
        XCTAssertEqual(result.ingress.decision.reason, .notEnforced)
    }

    func testWithoutTheDefaultDenyOnlySelectedEndpointsAreEnforced() throws {
        // Only the allow policies: frontend is egress-enforced (its rule has egress), not ingress.
        repo = try repository(SeedFixtures.allowTraffic)
        let f = resolve(frontend)
        XCTAssertTrue(f.egressEnforced)
        XCTAssertFalse(f.ingressEnforced)
        XCTAssertFalse(resolve(otherWeb).egressEnforced)
        XCTAssertEqual(trace(otherWeb, frontend, 80).verdict, .allowed)
    }

    func testTheL7PolicyDecidesRequestsAsTheArticleSays() throws {
        repo = try repository(SeedFixtures.defaultDenyAll, SeedFixtures.l7Policy)
        // The item's selectors without a namespace mean the policy's own (api-tier), as in Cilium: the admin tool
        // in another namespace is not selected at all.
        let localAdmin = try allocator.acquire(
            labels("k8s:role=admin-tool", "k8s:io.kubernetes.pod.namespace=api-tier"))
        let b = resolve(backend)
        let http = try XCTUnwrap(b.http.first)
        XCTAssertEqual(b.http.map(\.port), [8080])
        // The connection itself stays an L4 allow; the requests are decided by the HTTP rules.
        XCTAssertEqual(b.decide(identity: frontend.id, direction: .ingress, proto: 6, port: 8080).verdict, .allowed)
        let cases: [(Identity, String, String, Bool)] = [
            (frontend, "GET", "/api/v1/public/foo", true),
            (frontend, "GET", "/api/v1/public/", true),
            (frontend, "POST", "/api/v1/admin/bar", false),
            (frontend, "GET", "/api/v1/admin/bar", false),
            (otherWeb, "GET", "/api/v1/public/x?page=2", true),
            (localAdmin, "GET", "/api/v1/public/foo", true),
            (localAdmin, "POST", "/api/v1/admin/bar", true),
            (localAdmin, "POST", "/api/v1/public/foo", false),
            (adminTool, "GET", "/api/v1/public/foo", false),
            (postgres, "GET", "/api/v1/public/foo", false),
        ]
        for (peer, method, path, allowed) in cases {
            let decision = http.decide(identity: peer.id, request: HTTPRequestHead(method: method, path: path))
            XCTAssertEqual(decision.allowed, allowed, "\(peer.labels) \(method) \(path): \(decision)")
        }
        let id = try ruleID("api-tier/l7-policy-for-backend-api ingress[0]")
        XCTAssertEqual(http.rules.map(\.ruleID), [id, id])

        // With the article's L4 policy too, allow rules are a union: its allow of the frontend on 8080, which has
        // no HTTP rules, lets every request of the frontend through; the others still go by the HTTP rules.
        try repo.apply(JSON.parse(SeedFixtures.allowTraffic))
        let both = try XCTUnwrap(resolve(backend).http.first)
        let admin = HTTPRequestHead(method: "POST", path: "/api/v1/admin/bar")
        XCTAssertEqual(both.decide(identity: frontend.id, request: admin).reason, .unrestricted)
        XCTAssertFalse(both.decide(identity: otherWeb.id, request: admin).allowed)
    }

    func testTheExternalCIDRPolicyApplies() throws {
        try repo.apply(JSON.parse(SeedFixtures.allowEgressToExternal))
        // A CIDR identity as the CIDR plugin would allocate it, and one outside the allowed prefixes.
        let metadata = Identity(id: 1 << 24, labels: labels("cidr:169.254.169.254/32", "reserved:world"))
        let elsewhere = Identity(id: (1 << 24) + 1, labels: labels("cidr:203.0.113.0/24"))
        let b = repo.resolve(
            endpoint: backend.labels, identities: allocator.identities + [metadata, elsewhere], mode: .default)
        let id = try ruleID("api-tier/allow-egress-to-external egress[0]")
        XCTAssertTrue(b.entries.contains(PolicyEntry(identity: metadata.id, direction: .egress, ruleIDs: [id])))
        XCTAssertFalse(b.entries.contains { $0.identity == elsewhere.id })
    }
}
