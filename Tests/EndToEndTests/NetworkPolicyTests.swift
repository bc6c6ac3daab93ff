import AgentAPI
import Foundation
import XCTest

/// Kubernetes NetworkPolicies enforced with upstream semantics, checked as upstream's network policy e2e tests do:
/// every pair of the x/y/z × a/b/c model probed against an expected truth table. Each test reuses one model and
/// agent across its cases, deleting the policies between them.
final class NetworkPolicyTests: EndToEndTestCase {
    typealias Member = NetworkPolicyModel.Member

    /// A NetworkPolicy document in YAML, `spec` indented as a block under it.
    private func policy(_ name: String, in namespace: String = "x", _ spec: String) -> String {
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: \(name), namespace: \(namespace)}
        spec:
        \(spec.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n"))

        """
    }

    private static let xa = Member(namespace: "x", name: "a")

    func testDefaultDenyAndPeerSelection() throws {
        let model = try NetworkPolicyModel(self)
        assertTruthTable(model, .allowAll, "no policy")

        try model.apply(policy("deny-ingress", "podSelector: {}"))
        assertTruthTable(model, TruthTable { _, to, _ in to.namespace != "x" }, "default-deny ingress in x")
        // Traffic from the node (kubelet probes) is allowed whatever the policy.
        let node = try tcpConnect(
            from: model.topology.nodeNetns, to: model.pods[Self.xa]!.ipv4, port: 80, timeout: 1)
        XCTAssertTrue(node.passed, "node to x/a under default deny: \(node)")
        try model.deleteAllPolicies()

        try assertCase(
            model, policy("deny-all", "podSelector: {}\npolicyTypes: [Ingress, Egress]"),
            TruthTable { from, to, _ in from.namespace != "x" && to.namespace != "x" },
            "default-deny ingress and egress in x")

        try assertCase(
            model,
            policy(
                "a-from-b",
                """
                podSelector: {matchLabels: {pod: a}}
                ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]
                """), TruthTable { from, to, _ in to != Self.xa || from == Member(namespace: "x", name: "b") },
            "x/a from pods b of its namespace")

        try assertCase(
            model,
            policy(
                "a-from-everywhere",
                """
                podSelector: {matchLabels: {pod: a}}
                ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: b}}}]}]
                """), TruthTable { from, to, _ in to != Self.xa || from.name == "b" },
            "x/a from pods b of every namespace")

        try assertCase(
            model,
            policy(
                "a-from-y",
                """
                podSelector: {matchLabels: {pod: a}}
                ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]
                """), TruthTable { from, to, _ in to != Self.xa || from.namespace == "y" }, "x/a from namespace y only")

        try assertCase(
            model,
            policy(
                "a-and",
                """
                podSelector: {matchLabels: {pod: a}}
                ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]}]
                """), TruthTable { from, to, _ in to != Self.xa || from == Member(namespace: "y", name: "b") },
            "namespaceSelector AND podSelector in one peer")

        try assertCase(
            model,
            policy(
                "a-or",
                """
                podSelector: {matchLabels: {pod: a}}
                ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}, {podSelector: {matchLabels: {pod: b}}}]}]
                """),
            TruthTable { from, to, _ in
                to != Self.xa || from.namespace == "y" || from == Member(namespace: "x", name: "b")
            }, "namespaceSelector OR podSelector as two peers")

        try assertCase(
            model,
            policy(
                "a-expressions",
                """
                podSelector: {matchLabels: {pod: a}}
                ingress:
                - from:
                  - namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x]}]}
                    podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, c]}]}
                """), TruthTable { from, to, _ in to != Self.xa || (from.namespace != "x" && from.name != "b") },
            "matchExpressions")
        assertTruthTable(model, .allowAll, "policies deleted: traffic restored")
    }

    func testPortsProtocolsAndUnion() throws {
        let model = try NetworkPolicyModel(self)
        let all: [NetworkPolicyModel.Service] = [.tcp80, .tcp81, .udp80, .udp81]

        try assertCase(
            model,
            policy(
                "a-81",
                """
                podSelector: {matchLabels: {pod: a}}
                ingress: [{from: [{namespaceSelector: {}}], ports: [{port: 81}]}]
                """), TruthTable { _, to, service in to != Self.xa || service == .tcp81 }, services: all,
            "x/a on TCP port 81 only")

        try assertCase(
            model,
            policy(
                "a-range",
                """
                podSelector: {matchLabels: {pod: a}}
                ingress: [{ports: [{protocol: UDP, port: 81, endPort: 90}, {port: 70, endPort: 80}]}]
                """), TruthTable { _, to, service in to != Self.xa || service == .udp81 || service == .tcp80 },
            services: all, "endPort ranges: UDP 81-90 and TCP 70-80")

        try assertCase(
            model, policy("a-tcp", "podSelector: {matchLabels: {pod: a}}\ningress: [{ports: [{protocol: TCP}]}]"),
            TruthTable { _, to, service in to != Self.xa || !service.udp }, services: all,
            "protocol only: TCP allowed, UDP denied")

        // Two policies selecting x/a: the union of what they allow.
        try assertCase(
            model,
            policy(
                "a-from-y",
                """
                podSelector: {matchLabels: {pod: a}}
                ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]
                """) + "---\n"
                + policy(
                    "a-from-z-81",
                    """
                    podSelector: {matchLabels: {pod: a}}
                    ingress: [{from: [{namespaceSelector: {matchLabels: {ns: z}}}], ports: [{port: 81}]}]
                    """),
            TruthTable { from, to, service in
                to != Self.xa || from.namespace == "y" || (from.namespace == "z" && service == .tcp81)
            }, "union of two policies")

        // x/a may send nothing; y/b's allow of every namespace does not override that.
        try assertCase(
            model,
            policy("a-no-egress", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]") + "---\n"
                + policy(
                    "b-from-all", in: "y",
                    "podSelector: {matchLabels: {pod: b}}\ningress: [{from: [{namespaceSelector: {}}]}]"),
            TruthTable { from, _, _ in from != Self.xa }, "egress deny wins over the server's allow")

        // A default deny and an allow-all over it: allowed; the same for egress.
        try assertCase(
            model,
            policy("deny-all", "podSelector: {}\npolicyTypes: [Ingress, Egress]") + "---\n"
                + policy("allow-ingress", "podSelector: {}\ningress: [{}]") + "---\n"
                + policy("allow-egress", "podSelector: {}\npolicyTypes: [Egress]\negress: [{}]"), .allowAll,
            "allow-all ingress and egress over a default deny")

        // Egress from x/a to namespace y on TCP 80 only: replies of allowed connections pass (stateful). Without
        // policyTypes, egress rules make the policy Ingress and Egress: x/a's ingress is isolated too.
        try assertCase(
            model,
            policy(
                "a-to-y",
                """
                podSelector: {matchLabels: {pod: a}}
                egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}}], ports: [{port: 80}]}]
                """),
            TruthTable { from, to, service in
                to != Self.xa && (from != Self.xa || (to.namespace == "y" && service == .tcp80))
            }, services: all, "egress from x/a to y on TCP 80, ingress implied")

        try assertCase(
            model,
            policy(
                "a-to-y",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}}], ports: [{port: 80}]}]
                """), TruthTable { from, to, service in from != Self.xa || (to.namespace == "y" && service == .tcp80) },
            services: all, "egress only from x/a to y on TCP 80")
    }

    func testNamedPorts() throws {
        let model = try NetworkPolicyModel(self)
        let all: [NetworkPolicyModel.Service] = [.tcp80, .tcp81, .udp80, .udp81]
        try model.apply(
            policy(
                "a-named",
                """
                podSelector: {matchLabels: {pod: a}}
                ingress:
                - {from: [{namespaceSelector: {}}], ports: [{port: serve-81-tcp}]}
                - {ports: [{port: serve-80-udp, protocol: UDP}]}
                """))
        assertTruthTable(
            model, TruthTable { _, to, service in to != Self.xa || service == .tcp81 || service == .udp80 },
            services: all, "named ports ingress: serve-81-tcp and serve-80-udp")
        // A label change keeps the endpoint's named ports, and so what the policy allows.
        try model.relabel(Self.xa, ["k8s:tier=web"])
        let relabelled = try model.agent.getJSON("/v1/endpoint/\(model.endpointIDs[Self.xa]!)")
        XCTAssertEqual(relabelled["named-ports"], NetworkPolicyModel.namedPorts)
        try model.agent.waitForPolicyRevision()
        assertTruthTable(
            model, TruthTable { _, to, service in to != Self.xa || service == .tcp81 || service == .udp80 },
            services: [.tcp80, .tcp81], "named ports after x/a's labels changed")
        try model.deleteAllPolicies()

        try assertCase(
            model,
            policy(
                "a-named-egress",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}}], ports: [{port: serve-80-tcp}]}]
                """), TruthTable { from, to, service in from != Self.xa || (to.namespace == "y" && service == .tcp80) },
            services: all, "named port egress: serve-80-tcp of y's pods")

        // A name no pod defines, or one of another protocol (TCP is the default), allows nothing.
        try assertCase(
            model,
            policy(
                "a-unknown-name",
                "podSelector: {matchLabels: {pod: a}}\ningress: [{ports: [{port: serve-99-tcp}, {port: serve-80-udp}]}]"
            ), TruthTable { _, to, _ in to != Self.xa }, services: all, "named ports nobody has")
    }

    func testIPBlocksSelectPodsByAddress() throws {
        let model = try NetworkPolicyModel(self)
        let yb = Member(namespace: "y", name: "b")
        let ybAddress = model.pods[yb]!.ipv4
        try assertCase(
            model,
            policy(
                "a-to-yb",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress: [{to: [{ipBlock: {cidr: \(ybAddress)/32}}]}]
                """), TruthTable { from, to, _ in from != Self.xa || to == yb }, services: [.tcp80, .udp80],
            "egress from x/a to y/b's /32 only")

        let network = ybAddress.split(separator: ".").prefix(3).joined(separator: ".") + ".0/24"
        try assertCase(
            model,
            policy(
                "a-to-all-but-yb",
                """
                podSelector: {matchLabels: {pod: a}}
                policyTypes: [Egress]
                egress: [{to: [{ipBlock: {cidr: \(network), except: [\(ybAddress)/32]}}]}]
                """) + "---\n"
                + policy(
                    "b-from-yb",
                    """
                    podSelector: {matchLabels: {pod: b}}
                    ingress: [{from: [{ipBlock: {cidr: \(ybAddress)/32}}]}]
                    """),
            TruthTable { from, to, _ in
                (from != Self.xa || to != yb) && (to != Member(namespace: "x", name: "b") || from == yb)
            }, services: [.tcp80], "ipBlock except a pod's /32, and ingress from a pod's /32")
        assertTruthTable(model, .allowAll, services: [.tcp80], "ipBlock policies deleted")
    }

    func testChangesTakeEffectLive() throws {
        let model = try NetworkPolicyModel(self)
        // An established connection between pods no change below concerns must live through all of them.
        let unrelated = try OpenConnection(
            from: model.pods[Member(namespace: "y", name: "c")]!, to: model.pods[Member(namespace: "y", name: "a")]!,
            port: 80)
        defer { unrelated.close() }
        XCTAssertTrue(unrelated.exchange(), "y/c → y/a established")
        let fromY = policy(
            "a-ingress",
            """
            podSelector: {matchLabels: {pod: a}}
            ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]
            """)
        try model.apply(fromY)
        assertTruthTable(
            model, TruthTable { from, to, _ in to != Self.xa || from.namespace == "y" }, services: [.tcp80],
            "allow from y")
        // Trace and the endpoint's realized policy name the rule as `NetworkPolicy <namespace>/<name>`.
        let trace = try model.agent.getJSON("/v1/policy/trace?src=y/b&dst=x/a&dport=80")
        XCTAssertEqual(trace["verdict"], "allowed", "\(trace)")
        XCTAssertTrue("\(trace)".contains("NetworkPolicy x/a-ingress ingress[0]"), "\(trace)")
        let realized = try model.agent.api(.GET, "/v1/endpoint/\(model.endpointIDs[Self.xa]!)/policy")
        XCTAssertTrue("\(realized)".contains("NetworkPolicy x/a-ingress ingress[0]"), "\(realized)")

        // The same policy updated to deny everything.
        try model.apply(policy("a-ingress", "podSelector: {matchLabels: {pod: a}}\ningress: []"))
        assertTruthTable(model, TruthTable { _, to, _ in to != Self.xa }, services: [.tcp80], "updated to deny")

        // A namespace label change: z's pods get ns=y and are allowed, through their new identity.
        try model.apply(fromY)
        for name in NetworkPolicyModel.podNames {
            let member = Member(namespace: "z", name: name)
            try model.relabel(member, ["k8s:\(NetworkPolicyModel.namespaceLabel("ns"))=y"])
        }
        try model.agent.waitForPolicyRevision()
        assertTruthTable(
            model, TruthTable { from, to, _ in to != Self.xa || from.namespace != "x" }, services: [.tcp80],
            "namespace z relabelled ns=y")
        for name in NetworkPolicyModel.podNames {
            let member = Member(namespace: "z", name: name)
            try model.relabel(member, ["k8s:\(NetworkPolicyModel.namespaceLabel("ns"))=z"])
        }

        // A pod label change: x/c becomes pod=b and is allowed by a podSelector.
        try model.apply(
            policy(
                "a-ingress",
                """
                podSelector: {matchLabels: {pod: a}}
                ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]
                """))
        try model.relabel(Member(namespace: "x", name: "c"), ["k8s:pod=b"])
        try model.agent.waitForPolicyRevision()
        assertTruthTable(
            model, TruthTable { from, to, _ in to != Self.xa || (from.namespace == "x" && from.name != "a") },
            services: [.tcp80], "x/c relabelled pod=b")
        try model.relabel(Member(namespace: "x", name: "c"), ["k8s:pod=c"])
        try model.agent.waitForPolicyRevision()
        assertTruthTable(
            model, TruthTable { from, to, _ in to != Self.xa || from == Member(namespace: "x", name: "b") },
            services: [.tcp80], "x/c back to pod=c")

        // A pod created after the policy is selected by it and selected as a peer.
        try model.apply(
            policy(
                "a-ingress",
                """
                podSelector: {matchLabels: {pod: a}}
                ingress: [{from: [{podSelector: {matchLabels: {pod: d}}}]}]
                """) + "---\n" + policy("deny-d", in: "y", "podSelector: {matchLabels: {pod: d}}"))
        let xd = Member(namespace: "x", name: "d")
        let yd = Member(namespace: "y", name: "d")
        try model.addPod(xd)
        try model.addPod(yd)
        try model.agent.waitForPolicyRevision()
        assertTruthTable(
            model,
            TruthTable { from, to, _ in
                (to != Self.xa || from == xd) && to != yd
            }, services: [.tcp80], "pods d created after the policies")

        // Deleting the policies restores all traffic.
        try model.deleteAllPolicies()
        assertTruthTable(model, .allowAll, services: [.tcp80], "policies deleted")
        XCTAssertTrue(unrelated.exchange(), "y/c → y/a still established after every change")
    }

    func testAPIAndNodectlNameNetworkPolicies() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        let cnp = networkPolicy("x", "same", spec: ["endpointSelector": [:], "ingress": [[:]]])
        let list: JSON = [
            "apiVersion": "v1", "kind": "List",
            "items": [
                [
                    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": ["name": "same", "namespace": "x"], "spec": ["podSelector": [:]],
                ]
            ],
        ]
        let put = try agent.api(.PUT, "/v1/policy", [cnp, list])
        XCTAssertEqual(put.status, 200, "\(put)")
        XCTAssertEqual(put.json?["policies"], ["x/same", "NetworkPolicy x/same"])
        // Saved with its kind: a restarted agent restores both documents.
        try agent.restart()
        let get = try agent.getJSON("/v1/policy")
        XCTAssertEqual(
            get["policies"]?.arrayValue?.compactMap { $0["kind"]?.stringValue },
            ["CiliumNetworkPolicy", "NetworkPolicy"])
        let listed = try agent.nodectl("policy", "get")
        XCTAssertEqual(listed.status, 0, "\(listed)")
        XCTAssertTrue(listed.stdout.contains("NetworkPolicy         x           same"), listed.stdout)

        let ambiguous = try agent.nodectl("policy", "delete", "--namespace", "x", "--name", "same")
        XCTAssertNotEqual(ambiguous.status, 0, "\(ambiguous)")
        XCTAssertTrue(ambiguous.stderr.contains("kind"), ambiguous.stderr)
        let deleted = try agent.nodectl(
            "policy", "delete", "--namespace", "x", "--name", "same", "--kind", "NetworkPolicy")
        XCTAssertEqual(deleted.status, 0, "\(deleted)")
        XCTAssertTrue(deleted.stdout.contains("NetworkPolicy x/same"), deleted.stdout)
        XCTAssertEqual(try agent.getJSON("/v1/policy")["policies"]?.arrayValue?.count, 1)

        let bad = try agent.api(
            .PUT, "/v1/policy",
            [
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": ["name": "bad", "namespace": "x"],
                "spec": ["podSelector": [:], "ingress": [["from": [["podSelectr": [:]]]]]],
            ])
        assertAPIError(
            bad, status: 400, code: "invalid-field", field: "spec.ingress[0].from[0].podSelectr",
            "unknown field refused")
    }
}
