import AgentAPI
import XCTest

@testable import Policy

final class PolicyCompilerTests: XCTestCase {
    let client = Identity(id: 300, labels: labels("k8s:app=client", "k8s:io.kubernetes.pod.namespace=web-tier"))
    let server = Identity(id: 301, labels: labels("k8s:app=server", "k8s:io.kubernetes.pod.namespace=web-tier"))
    let remote = Identity(id: 302, labels: labels("k8s:app=client", "k8s:io.kubernetes.pod.namespace=other"))
    let cidrID = Identity(id: 1 << 24, labels: labels("cidr:10.1.0.0/16"))
    let cidrExcepted = Identity(id: (1 << 24) + 1, labels: labels("cidr:10.96.0.0/12"))
    let cidrV6 = Identity(id: (1 << 24) + 2, labels: labels("cidr:fd00--/64"))

    private var identities: [Identity] {
        IdentityAllocator().identities + [client, server, remote, cidrID, cidrExcepted, cidrV6]
    }

    /// The server's policy under a rule with `spec`'s sections (`endpointSelector` added).
    private func serverPolicy(_ sections: String, mode: EnforcementMode = .default) throws -> (
        EndpointPolicy, PolicyRepository
    ) {
        let repo = try repository(
            policy(spec: #"{"endpointSelector": {"matchLabels": {"app": "server"}}, \#(sections)}"#))
        return (repo.resolve(endpoint: server.labels, identities: identities, mode: mode), repo)
    }

    private func keys(_ policy: EndpointPolicy) -> [String] { policy.entries.map { "\($0)" } }

    func testPortExpansion() throws {
        let (policy, _) = try serverPolicy(
            """
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}],
                         "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}, {"port": 8000, "endPort": 8010,
                             "protocol": "TCP"},
                                                {"port": "0", "protocol": "UDP"}]}]}]
            """)
        XCTAssertEqual(
            keys(policy),
            [
                "ingress identity=300 TCP 53 allow [1]", "ingress identity=300 TCP 8000-8007 allow [1]",
                "ingress identity=300 TCP 8008-8009 allow [1]", "ingress identity=300 TCP 8010 allow [1]",
                "ingress identity=300 UDP any port allow [1]", "ingress identity=300 SCTP 53 allow [1]",
            ])
        let (anyProto, _) = try serverPolicy(#""ingress": [{"toPorts": [{"ports": [{"port": "0"}]}]}]"#)
        XCTAssertEqual(keys(anyProto), ["ingress identity=0 ANY allow [1]"])
        XCTAssertEqual(anyProto.decide(identity: 999, direction: .ingress, proto: 1, port: 0).verdict, .allowed)
    }

    func testPeerSemantics() throws {
        // Ports without peers: every peer. Peers without ports: every protocol. An empty peer list: nothing.
        let (portsOnly, _) = try serverPolicy(
            #""ingress": [{"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]"#)
        XCTAssertEqual(keys(portsOnly), ["ingress identity=0 TCP 80 allow [1]"])
        let (emptyPeers, _) = try serverPolicy(
            #""ingress": [{"fromEndpoints": [], "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]"#)
        XCTAssertTrue(emptyPeers.ingressEnforced)
        XCTAssertEqual(emptyPeers.entries, [])
        let (emptyItem, _) = try serverPolicy(#""ingress": [{}]"#)
        XCTAssertTrue(emptyItem.ingressEnforced)
        XCTAssertEqual(emptyItem.entries, [])
        // A namespaced peer selector selects only its namespace's identities.
        let (peers, _) = try serverPolicy(#""ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}]"#)
        XCTAssertEqual(keys(peers), ["ingress identity=300 ANY allow [1]"])
        // {} in a peer list: every identity of the namespace, never world or CIDR identities.
        let (all, _) = try serverPolicy(#""ingress": [{"fromEndpoints": [{}]}]"#)
        XCTAssertEqual(all.entries.map(\.identity), [300, 301])
    }

    func testEntities() throws {
        let (policy, _) = try serverPolicy(
            """
            "egress": [{"toEntities": ["host"]}, {"toEntities": ["world"]}, {"toEntities": ["cluster"],
                "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}]}]}],
            "ingress": [{"fromEntities": ["all"], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}]
            """)
        let egress = policy.entries.filter { $0.direction == .egress }
        XCTAssertEqual(egress.filter { $0.proto == 0 }.map(\.identity), [1, 2, 1 << 24, (1 << 24) + 1, (1 << 24) + 2])
        // Host's UDP 53 is inside the any-protocol allow for host, so it is left out.
        XCTAssertEqual(egress.filter { $0.proto == udp }.map(\.identity), [3, 4, 5, 6, 7, 8, 300, 301, 302])
        XCTAssertEqual(policy.entries.filter { $0.direction == .ingress }.map(\.identity), [0])
    }

    func testCIDRPeers() throws {
        let (policy, _) = try serverPolicy(
            """
            "egress": [{"toCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12"]}]}, {"toCIDR": ["fd00::/16"]},
                       {"toCIDR": ["0.0.0.0/0"]}]
            """)
        XCTAssertEqual(
            keys(policy),
            [
                "egress identity=2 ANY allow [3]", "egress identity=16777216 ANY allow [1, 3]",
                "egress identity=16777217 ANY allow [3]", "egress identity=16777218 ANY allow [2]",
            ])
    }

    func testSpecificAllowUnderBroadDenyBecomesDeny() throws {
        let (policy, repo) = try serverPolicy(
            """
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}],
                "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]},
                        {"fromEndpoints": [{"matchLabels": {"app": "client"}}],
                            "toPorts": [{"ports": [{"port": "9090", "protocol": "UDP"}]}]}],
            "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}],
                "toPorts": [{"ports": [{"port": "0", "protocol": "TCP"}]}]}]
            """)
        let deny = try XCTUnwrap(repo.ruleNames.first { $0.value == "web-tier/p ingressDeny[0]" }?.key)
        XCTAssertEqual(
            keys(policy),
            [
                "ingress identity=300 TCP any port deny [\(deny)]", "ingress identity=300 TCP 8080 deny [\(deny)]",
                "ingress identity=300 UDP 9090 allow [2]",
            ])
        // The datapath's longest-prefix lookup now finds a deny for 8080.
        let decision = policy.decide(identity: 300, direction: .ingress, proto: tcp, port: 8080)
        XCTAssertEqual(decision.verdict, .denied)
        XCTAssertEqual(decision.reason, .denyRule)
        XCTAssertEqual(policy.decide(identity: 300, direction: .ingress, proto: udp, port: 9090).verdict, .allowed)
    }

    func testNarrowDenyInsideBroadAllowStaysNarrow() throws {
        let (policy, _) = try serverPolicy(
            """
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}],
            "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}],
                "toPorts": [{"ports": [{"port": "22", "protocol": "TCP"}]}]}]
            """)
        XCTAssertEqual(keys(policy), ["ingress identity=300 ANY allow [1]", "ingress identity=300 TCP 22 deny [2]"])
        XCTAssertEqual(policy.decide(identity: 300, direction: .ingress, proto: tcp, port: 22).verdict, .denied)
        XCTAssertEqual(policy.decide(identity: 300, direction: .ingress, proto: tcp, port: 23).verdict, .allowed)
    }

    func testDenyOnAnyPeerCoversEveryIdentity() throws {
        let (policy, _) = try serverPolicy(
            """
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}],
                "toPorts": [{"ports": [{"port": "8000", "endPort": 8003, "protocol": "TCP"}]}]},
                        {"fromEndpoints": [{"matchLabels": {"app": "client"}}],
                            "toPorts": [{"ports": [{"port": "8004", "protocol": "TCP"}]}]}],
            "ingressDeny": [{"toPorts": [{"ports": [{"port": "8000", "endPort": 8003, "protocol": "TCP"}]}]},
                            {"fromEntities": ["all"], "toPorts": [{"ports": [{"port": "8002", "protocol": "TCP"}]}]}]
            """)
        XCTAssertEqual(
            keys(policy),
            [
                "ingress identity=0 TCP 8000-8003 deny [3]", "ingress identity=0 TCP 8002 deny [4]",
                "ingress identity=300 TCP 8000-8003 deny [3]", "ingress identity=300 TCP 8004 allow [2]",
            ])
        XCTAssertEqual(policy.decide(identity: 300, direction: .ingress, proto: tcp, port: 8001).verdict, .denied)
        XCTAssertEqual(policy.decide(identity: 300, direction: .ingress, proto: tcp, port: 8004).verdict, .allowed)
    }

    func testAllowsInsideBroaderAllowsAreLeftOut() throws {
        let (policy, _) = try serverPolicy(
            """
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}], "toPorts": [{"ports": [{"port": "80",
                "protocol": "TCP"}, {"port": "53", "protocol": "UDP"}]}]},
                        {"toPorts": [{"ports": [{"port": "0", "protocol": "TCP"}]}]},
                        {"fromEndpoints": [{"matchLabels": {"app": "client"}}], "toPorts": [{"ports": [{"port": "53",
                            "protocol": "ANY"}]}]}]
            """)
        XCTAssertEqual(
            keys(policy),
            [
                "ingress identity=0 TCP any port allow [2]", "ingress identity=300 UDP 53 allow [1, 3]",
                "ingress identity=300 SCTP 53 allow [3]",
            ])
        XCTAssertEqual(policy.decide(identity: 300, direction: .ingress, proto: tcp, port: 80).verdict, .allowed)
    }

    func testIdenticalAllowAndDenyKeepOnlyTheDeny() throws {
        let (policy, _) = try serverPolicy(
            """
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]},
                {"fromEndpoints": [{"matchLabels": {"app": "client"}}]}],
            "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}]
            """)
        XCTAssertEqual(keys(policy), ["ingress identity=300 ANY deny [3]"])
        let (merged, _) = try serverPolicy(
            """
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}, {"fromEndpoints": [{}]}]
            """)
        XCTAssertEqual(keys(merged), ["ingress identity=300 ANY allow [1, 2]", "ingress identity=301 ANY allow [2]"])
    }

    func testDefaultDenyFollowsSectionPresence() throws {
        let (egressOnly, _) = try serverPolicy(#""egress": []"#)
        XCTAssertTrue(egressOnly.egressEnforced)
        XCTAssertFalse(egressOnly.ingressEnforced)
        let (denyOnly, _) = try serverPolicy(#""ingressDeny": []"#)
        XCTAssertTrue(denyOnly.ingressEnforced)
        XCTAssertFalse(denyOnly.egressEnforced)
        // Not selected: nothing enforced.
        let repo = try repository(
            policy(spec: #"{"endpointSelector": {"matchLabels": {"app": "nobody"}}, "ingress": []}"#))
        let other = repo.resolve(endpoint: server.labels, identities: identities, mode: .default)
        XCTAssertFalse(other.ingressEnforced || other.egressEnforced)
    }

    func testEnableDefaultDenyOptOut() throws {
        let (allowOnly, _) = try serverPolicy(
            #""ingress": [{"fromEndpoints": [{}]}], "enableDefaultDeny": {"ingress": false}"#)
        XCTAssertFalse(allowOnly.ingressEnforced)
        XCTAssertEqual(allowOnly.decide(identity: 999, direction: .ingress, proto: tcp, port: 1).reason, .notEnforced)

        let (withDeny, _) = try serverPolicy(
            """
            "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}],
                "enableDefaultDeny": {"ingress": false}
            """)
        XCTAssertTrue(withDeny.ingressEnforced)
        XCTAssertEqual(keys(withDeny), ["ingress identity=0 ANY allow []", "ingress identity=300 ANY deny [1]"])
        XCTAssertEqual(withDeny.decide(identity: 300, direction: .ingress, proto: tcp, port: 1).verdict, .denied)
        XCTAssertEqual(withDeny.decide(identity: 999, direction: .ingress, proto: tcp, port: 1).verdict, .allowed)

        // Another rule without the opt-out still makes the direction default-deny.
        var repo = try repository(
            policy(
                spec: """
                    {"endpointSelector": {"matchLabels": {"app": "server"}}, "ingress": [{"fromEndpoints": [{}]}],
                        "enableDefaultDeny": {"ingress": false}}
                    """))
        try repo.apply(JSON.parse(policy("strict", spec: #"{"endpointSelector": {}, "ingress": []}"#)))
        let strict = repo.resolve(endpoint: server.labels, identities: identities, mode: .default)
        XCTAssertTrue(strict.ingressEnforced)
        XCTAssertEqual(strict.decide(identity: 302, direction: .ingress, proto: tcp, port: 1).verdict, .denied)
        XCTAssertEqual(strict.decide(identity: 300, direction: .ingress, proto: tcp, port: 1).verdict, .allowed)
    }

    func testEnforcementModes() throws {
        let noRules = PolicyRepository()
        let always = noRules.resolve(endpoint: server.labels, identities: identities, mode: .always)
        XCTAssertTrue(always.ingressEnforced && always.egressEnforced)
        XCTAssertEqual(always.entries, [])
        let byDefault = noRules.resolve(endpoint: server.labels, identities: identities, mode: .default)
        XCTAssertFalse(byDefault.ingressEnforced || byDefault.egressEnforced)

        let (optedOut, _) = try serverPolicy(
            #""ingress": [{"fromEndpoints": [{}]}], "enableDefaultDeny": {"ingress": false}"#, mode: .always)
        XCTAssertTrue(optedOut.ingressEnforced, "always ignores the opt-out")
        XCTAssertFalse(optedOut.entries.contains { $0.identity == 0 })

        let (never, _) = try serverPolicy(#""ingress": [], "egressDeny": [{"toEntities": ["all"]}]"#, mode: .never)
        XCTAssertFalse(never.ingressEnforced || never.egressEnforced)
        XCTAssertEqual(never.entries, [])
    }

    func testIdentitiesNotPresentProduceNoEntries() throws {
        let repo = try repository(
            policy(
                spec: """
                    {"endpointSelector": {"matchLabels": {"app": "server"}},
                        "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "ghost"}}]}]}
                    """))
        let resolved = repo.resolve(endpoint: server.labels, identities: identities, mode: .default)
        XCTAssertTrue(resolved.ingressEnforced)
        XCTAssertEqual(resolved.entries, [])
        let ghost = Identity(id: 400, labels: labels("k8s:app=ghost", "k8s:io.kubernetes.pod.namespace=web-tier"))
        let withGhost = repo.resolve(endpoint: server.labels, identities: identities + [ghost], mode: .default)
        XCTAssertEqual(withGhost.entries.map(\.identity), [400])
        let tuples = repo.resolve(
            endpoint: server.labels, identities: [(id: ghost.id, labels: ghost.labels)], mode: .default)
        XCTAssertEqual(tuples, withGhost)
    }

    func testDiff() {
        let a = PolicyEntry(identity: 300, direction: .ingress, ruleIDs: [1])
        let b = PolicyEntry(identity: 301, direction: .ingress, proto: tcp, port: 80, portPrefixBits: 16, ruleIDs: [2])
        let c = PolicyEntry(identity: 302, direction: .egress, ruleIDs: [3])
        var bDenied = b
        bDenied.deny = true
        var aRenamed = a
        aRenamed.ruleIDs = [1, 4]
        let (upsert, remove) = PolicyMapEntries.diff(from: [a, b, c], to: [aRenamed, bDenied])
        XCTAssertEqual(upsert, [aRenamed, bDenied])
        XCTAssertEqual(remove, [c.key])
        let (none, gone) = PolicyMapEntries.diff(from: [a, b], to: [b, a])
        XCTAssertEqual(none, [])
        XCTAssertEqual(gone, [])
        XCTAssertEqual(PolicyMapEntries.diff(from: [], to: [a]).upsert, [a])
        // The map keeps one rule per key: the lowest.
        XCTAssertEqual(aRenamed.mapped.ruleIDs, [1])
        XCTAssertEqual(aRenamed.ruleID, 1)
        XCTAssertEqual(PolicyEntry(identity: 1, direction: .egress).ruleID, 0)
    }
}
