import AgentAPI
import Foundation
import XCTest

/// What policies mean on the wire, with real TCP and UDP through the daemon's datapath: IPv6, port ranges, deny
/// over allow, label expressions, the enforcement mode, atomic rejection of bad requests, unsupported fields,
/// established connections across policy changes, trace, and the policy API's get/delete variants.
final class PolicySemanticsTests: EndToEndTestCase {
    /// A server pod and a client pod in namespace `lab`, registered with `app=server` / `app=client`.
    struct Pair {
        var topology: Topology
        var agent: AgentProcess
        var client: Pod
        var server: Pod
    }

    func makePair(tcp: [UInt16] = [], udp: [UInt16] = [], dualStack: Bool = false) throws -> Pair {
        let topology = try makeTopology()
        let client = try topology.addPod(namespace: "lab", name: "client", dualStack: dualStack)
        let server = try topology.addPod(namespace: "lab", name: "server", dualStack: dualStack)
        for port in tcp { _ = try TCPServer(on: server, port: port, in: topology) }
        for port in udp { _ = try UDPServer(on: server, port: port, in: topology) }
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: client, labels: ["k8s:app=client"])
        try agent.registerEndpoint(id: 2, pod: server, labels: ["k8s:app=server"])
        return Pair(topology: topology, agent: agent, client: client, server: server)
    }

    func serverIngress(_ name: String, _ items: JSON, deny: JSON? = nil) -> JSON {
        var spec: [String: JSON] = ["endpointSelector": ["matchLabels": ["app": "server"]], "ingress": items]
        if let deny { spec["ingressDeny"] = deny }
        return networkPolicy("lab", name, spec: .object(spec))
    }

    let fromClient: JSON = [["matchLabels": ["app": "client"]]]

    func testSeedPoliciesHoldOverIPv6() throws {
        let topology = try makeTopology()
        let frontend = try topology.addPod(namespace: "web-tier", name: "frontend")
        let webOther = try topology.addPod(namespace: "web-tier", name: "web-other")
        let backend = try topology.addPod(namespace: "api-tier", name: "backend-api")
        let postgres = try topology.addPod(namespace: "data-tier", name: "postgres")
        for (pod, port) in [(backend, 8080), (backend, 9090), (postgres, 5432), (postgres, 5433)] {
            _ = try TCPServer(on: pod, port: UInt16(port), in: topology)
        }
        let agent = try startAgent(in: topology)
        for (index, (pod, labels)) in [
            (frontend, ["k8s:app=frontend"]), (webOther, ["k8s:app=web-other"]), (backend, ["k8s:app=backend-api"]),
            (postgres, ["k8s:app=postgres"]),
        ].enumerated() {
            try agent.registerEndpoint(id: index + 1, pod: pod, labels: labels)
        }
        for file in ["default-deny-all.yaml", "allow-traffic-policy.yaml"] {
            XCTAssertEqual(try agent.nodectl("policy", "import", try fixture(file)).status, 0)
        }
        try agent.waitForPolicyRevision()
        var probes: [Probe] = []
        for ipv6 in [true, false] {
            probes += [
                Probe(from: frontend, to: backend, port: 8080, .passes, ipv6: ipv6),
                Probe(from: frontend, to: backend, port: 9090, .dropped, ipv6: ipv6),
                Probe(from: frontend, to: postgres, port: 5432, .dropped, ipv6: ipv6),
                Probe(from: webOther, to: backend, port: 8080, .dropped, ipv6: ipv6),
                Probe(from: backend, to: postgres, port: 5432, .passes, ipv6: ipv6),
                Probe(from: backend, to: postgres, port: 5433, .dropped, ipv6: ipv6),
                Probe(from: postgres, to: backend, port: 8080, .dropped, ipv6: ipv6),
            ]
        }
        assertReachability(probes, "seed policies, IPv6 and IPv4")
    }

    func testPortRangesAllowExactlyTheirEdges() throws {
        let p = try makePair(tcp: [8000, 8005, 8010], udp: [5353, 5360])
        let range: JSON = [
            [
                "ports": [
                    ["port": "8000", "endPort": 8010, "protocol": "TCP"],
                    ["port": "5353", "endPort": 5360, "protocol": "UDP"],
                ]
            ]
        ]
        try p.agent.importPolicies([serverIngress("ranges", [["fromEndpoints": fromClient, "toPorts": range]])])
        assertReachability(
            [7999, 8000, 8005, 8010, 8011, 5353].map { port in
                Probe(
                    from: p.client, to: p.server, port: UInt16(port),
                    [8000, 8005, 8010].contains(port) ? .passes : .dropped)
            }, "TCP 8000-8010")
        assertReachability(
            [5352, 5353, 5360, 5361, 8005].map { port in
                Probe.udp(
                    from: p.client, to: p.server, port: UInt16(port), [5353, 5360].contains(port) ? .passes : .dropped)
            }, "UDP 5353-5360")

        // The range is written as port prefixes that together cover exactly 8000-8010.
        let entries = try p.agent.getJSON("/v1/endpoint/2/policy")["entries"]?.arrayValue ?? []
        let tcp = entries.filter { $0["protocol"] == "TCP" && $0["direction"] == "ingress" }
        let covered = tcp.flatMap { entry -> ClosedRange<Int64> in
            (entry["port"]?.intValue ?? 0)...(entry["end-port"]?.intValue ?? 0)
        }
        XCTAssertEqual(covered.sorted(), Array(8000...8010), "\(tcp)")
        XCTAssertGreaterThan(tcp.count, 1, "8000-8010 is not one prefix")
    }

    func testDenyOverridesAnAllowedRange() throws {
        let p = try makePair(tcp: [8004, 8005, 8006], udp: [5354, 5355, 5356])
        let range: JSON = [
            [
                "ports": [
                    ["port": "8000", "endPort": 8010, "protocol": "TCP"],
                    ["port": "5353", "endPort": 5360, "protocol": "UDP"],
                ]
            ]
        ]
        try p.agent.importPolicies([
            serverIngress("ranges", [["fromEndpoints": fromClient, "toPorts": range]]),
            // A separate policy, and no peer: the deny holds whoever sends, whatever allows it elsewhere.
            networkPolicy(
                "lab", "no-8005",
                spec: [
                    "endpointSelector": ["matchLabels": ["app": "server"]],
                    "ingressDeny": [["toPorts": ports(8005)], ["toPorts": ports(5355, "UDP")]],
                ]),
        ])
        assertReachability(
            [
                Probe(from: p.client, to: p.server, port: 8004, .passes),
                Probe(from: p.client, to: p.server, port: 8005, .dropped),
                Probe(from: p.client, to: p.server, port: 8006, .passes),
            ], "deny 8005 inside allowed 8000-8010")
        assertReachability(
            [
                Probe.udp(from: p.client, to: p.server, port: 5354, .passes),
                Probe.udp(from: p.client, to: p.server, port: 5355, .dropped),
                Probe.udp(from: p.client, to: p.server, port: 5356, .passes),
            ], "deny 5355 inside allowed 5353-5360")

        let metrics = try p.agent.mapEntries("na_metrics")
        let denied = metrics.first {
            $0["key"]?["reason"] == "policy deny rule" && $0["key"]?["direction"] == "ingress"
        }
        XCTAssertGreaterThan(denied?["value"]?["packets"]?.intValue ?? 0, 0, "drops counted as deny: \(metrics)")

        let trace = try p.agent.getJSON("/v1/policy/trace?src=1&dst=2&dport=8005&protocol=TCP")
        XCTAssertEqual(trace["verdict"], "denied", "\(trace)")
        XCTAssertEqual(trace["ingress"]?["rules"], ["lab/no-8005 ingressDeny[0]"], "\(trace)")
    }

    func testMatchExpressionsSelectTheRightPeers() throws {
        let topology = try makeTopology()
        let target = try topology.addPod(namespace: "lab", name: "target", dualStack: false)
        let clients = try ["prod", "staging", "dev", nil].enumerated().map { index, env in
            (try topology.addPod(namespace: "lab", name: "c\(index)", dualStack: false), env)
        }
        for port in 81...84 { _ = try TCPServer(on: target, port: UInt16(port), in: topology) }
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: target, labels: ["k8s:app=target"])
        for (index, (pod, env)) in clients.enumerated() {
            try agent.registerEndpoint(
                id: 10 + index, pod: pod, labels: ["k8s:tier=web"] + (env.map { ["k8s:env=\($0)"] } ?? []))
        }
        let expressions: [(port: Int, JSON, allowed: Set<String?>)] = [
            (81, ["key": "env", "operator": "In", "values": ["prod", "staging"]], ["prod", "staging"]),
            (82, ["key": "env", "operator": "NotIn", "values": ["prod"]], ["staging", "dev", nil]),
            (83, ["key": "env", "operator": "Exists"], ["prod", "staging", "dev"]),
            (84, ["key": "env", "operator": "DoesNotExist"], [nil]),
        ]
        let items = expressions.map { port, expression, _ -> JSON in
            ["fromEndpoints": [["matchExpressions": [expression]]], "toPorts": ports(port)]
        }
        try agent.importPolicies([
            networkPolicy(
                "lab", "expressions",
                spec: ["endpointSelector": ["matchLabels": ["app": "target"]], "ingress": .array(items)])
        ])
        var probes: [Probe] = []
        for (port, _, allowed) in expressions {
            for (pod, env) in clients {
                probes.append(
                    Probe(from: pod, to: target, port: UInt16(port), allowed.contains(env) ? .passes : .dropped))
            }
        }
        assertReachability(probes, "matchExpressions In / NotIn / Exists / DoesNotExist on env")
    }

    func testPolicyEnforcementModeChangesLive() throws {
        let p = try makePair(tcp: [80], udp: [53])
        func expect(_ tcp: Verdict, _ udp: Verdict, _ context: String) {
            assertReachability([Probe(from: p.client, to: p.server, port: 80, tcp)], context)
            assertReachability([Probe.udp(from: p.client, to: p.server, port: 53, udp)], context)
        }
        expect(.passes, .passes, "default, no policy")

        try p.agent.setConfig(["policy-enforcement": "always"])
        expect(.dropped, .dropped, "always, no policy: nothing is allowed")
        XCTAssertEqual(try p.agent.getJSON("/v1/endpoint/2")["policy-enforcement"], ["ingress": true, "egress": true])

        try p.agent.setConfig(["policy-enforcement": "default"])
        expect(.passes, .passes, "back to default")

        try p.agent.importPolicies([serverIngress("tcp-80", [["fromEndpoints": fromClient, "toPorts": ports(80)]])])
        expect(.passes, .dropped, "default, a policy allowing TCP 80")

        try p.agent.setConfig(["policy-enforcement": "never"])
        expect(.passes, .passes, "never: the policy is not enforced")
        XCTAssertEqual(
            try p.agent.getJSON("/v1/endpoint/2")["policy-enforcement"], ["ingress": false, "egress": false])

        try p.agent.setConfig(["policy-enforcement": "default"])
        expect(.passes, .dropped, "default again")
    }

    func testEstablishedConnectionsSurviveUnrelatedPolicyChanges() throws {
        let topology = try makeTopology()
        let a = try topology.addPod(namespace: "lab", name: "a", dualStack: false)
        let b = try topology.addPod(namespace: "lab", name: "b", dualStack: false)
        let c = try topology.addPod(namespace: "other", name: "c", dualStack: false)
        _ = try TCPServer(on: b, port: 8080, in: topology)
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: a, labels: ["k8s:app=a"])
        try agent.registerEndpoint(id: 2, pod: b, labels: ["k8s:app=b"])
        try agent.registerEndpoint(id: 3, pod: c, labels: ["k8s:app=c"])
        try agent.importPolicies(
            SeedPolicyJSON.defaultDeny(["lab"]) + [
                networkPolicy(
                    "lab", "a-to-b",
                    spec: [
                        "endpointSelector": ["matchLabels": ["app": "a"]],
                        "egress": [["toEndpoints": [["matchLabels": ["app": "b"]]], "toPorts": ports(8080)]],
                    ]),
                networkPolicy(
                    "lab", "b-from-a",
                    spec: [
                        "endpointSelector": ["matchLabels": ["app": "b"]],
                        "ingress": [["fromEndpoints": [["matchLabels": ["app": "a"]]], "toPorts": ports(8080)]],
                    ]),
            ])
        let connection = try OpenConnection(from: a, to: b, port: 8080)
        defer { connection.close() }
        XCTAssertTrue(connection.exchange(), "data flows on the new connection")

        try agent.importPolicies(SeedPolicyJSON.defaultDeny(["other"]))
        XCTAssertTrue(connection.exchange(), "after a policy for another namespace")
        try agent.importPolicies([
            networkPolicy(
                "lab", "b-debug",
                spec: [
                    "endpointSelector": ["matchLabels": ["app": "b"]],
                    "ingress": [["fromEndpoints": [["matchLabels": ["app": "a"]]], "toPorts": ports(9090)]],
                ])
        ])
        XCTAssertTrue(connection.exchange(), "after a change to the server's own policy map")
        try agent.setConfig(["log-level": "debug"])
        XCTAssertTrue(connection.exchange(), "after a config change")
        assertReachability(
            [
                Probe(from: a, to: b, port: 8080, .passes), Probe(from: a, to: b, port: 8081, .dropped),
                Probe(from: c, to: b, port: 8080, .dropped),
            ], "new connections follow the policies")
        XCTAssertTrue(connection.exchange(), "still open at the end")
    }

    func testNodectlTraceVerdictsNameTheDecidingRules() throws {
        let topology = try makeTopology()
        let frontend = try topology.addPod(namespace: "web-tier", name: "frontend", dualStack: false)
        let backend = try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        let outsider = try topology.addPod(namespace: "sandbox", name: "outsider", dualStack: false)
        _ = try TCPServer(on: backend, port: 8080, in: topology)
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: frontend, labels: ["k8s:app=frontend"])
        try agent.registerEndpoint(id: 2, pod: backend, labels: ["k8s:app=backend-api"])
        try agent.registerEndpoint(id: 3, pod: outsider, labels: ["k8s:app=outsider"])
        for file in ["default-deny-all.yaml", "allow-traffic-policy.yaml"] {
            XCTAssertEqual(try agent.nodectl("policy", "import", try fixture(file)).status, 0)
        }
        try agent.importPolicies([
            networkPolicy(
                "api-tier", "no-sandbox",
                spec: [
                    "endpointSelector": ["matchLabels": ["app": "backend-api"]],
                    "ingressDeny": [
                        [
                            "fromEndpoints": [["matchLabels": ["k8s:io.kubernetes.pod.namespace": "sandbox"]]],
                            "toPorts": ports(8080),
                        ]
                    ],
                ])
        ])

        func trace(_ src: String, _ dst: String, _ port: String) throws -> (JSON, String) {
            let json = try agent.nodectl("-o", "json", "policy", "trace", "--src", src, "--dst", dst, "--dport", port)
            XCTAssertEqual(json.status, 0, json.stderr)
            let table = try agent.nodectl("policy", "trace", "--src", src, "--dst", dst, "--dport", port)
            XCTAssertEqual(table.status, 0, table.stderr)
            return (try JSON.parse(json.stdout), table.stdout)
        }

        let (allowed, allowedText) = try trace("web-tier/frontend", "api-tier/backend-api", "8080/tcp")
        XCTAssertEqual(allowed["verdict"], "allowed", "\(allowed)")
        XCTAssertEqual(allowed["egress"]?["rules"], ["web-tier/allow-frontend-to-backend egress[0]"])
        XCTAssertEqual(allowed["ingress"]?["rules"], ["api-tier/allow-ingress-to-backend ingress[0]"])
        for text in ["allowed", "web-tier/allow-frontend-to-backend egress[0]", "api-tier/allow-ingress-to-backend"] {
            XCTAssertTrue(allowedText.contains(text), "trace output shows \(text):\n\(allowedText)")
        }

        let (denied, deniedText) = try trace(outsider.ipv4, "2", "8080")
        XCTAssertEqual(denied["verdict"], "denied", "\(denied)")
        XCTAssertEqual(denied["egress"]?["verdict"], "allowed", "sandbox has no policy")
        XCTAssertEqual(denied["ingress"]?["rules"], ["api-tier/no-sandbox ingressDeny[0]"], "\(denied)")
        XCTAssertTrue(
            deniedText.contains("denied") && deniedText.contains("api-tier/no-sandbox ingressDeny[0]"), deniedText)

        let (byDefault, _) = try trace("k8s:app=frontend,k8s:io.kubernetes.pod.namespace=web-tier", "2", "9090/tcp")
        XCTAssertEqual(byDefault["verdict"], "denied")
        XCTAssertTrue(byDefault["reason"]?.stringValue?.contains("default deny") ?? false, "\(byDefault)")
        let (udp, _) = try trace("1", "2", "8080/udp")
        XCTAssertEqual(udp["verdict"], "denied", "the allow is for TCP only: \(udp)")

        assertReachability(
            [
                Probe(from: frontend, to: backend, port: 8080, .passes),
                Probe(from: outsider, to: backend, port: 8080, .dropped),
                Probe(from: frontend, to: backend, port: 9090, .dropped),
            ], "the datapath agrees with the traces")
    }
}
