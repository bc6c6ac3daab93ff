import AgentAPI
import CIDRPolicy
import DatapathCore
import Foundation
import Policy
import XCTest

@testable import Agent

/// Peer changes update only the entries of the identities that appeared or went away (`Regeneration+PeerDelta`):
/// a real agent (datapath loaded, maps pinned under a private bpf root, endpoints on veths of a namespace of the
/// test's own) goes through endpoint creates, deletes and label changes under a varied policy, and after each
/// step every endpoint's policy maps, read back from the kernel, and its realized state must be what a full
/// regeneration from scratch computes.
final class IncrementalRegenerationTests: ScratchAgentTestCase {
    func testPeerChangesLeaveEveryEndpointAsAFullRegenerationWould() throws {
        let agent = try NodeAgent(config: agentConfig, plugins: [CIDRPolicyPlugin()], logLevel: LogLevelBox(.info))
        let netns = try ScratchNetns(name: "na-incr-\(tag)")
        scratch = netns
        for i in 0..<Self.interfaces { try netns.addVethPair("nai\(i)a", "nai\(i)b") }
        agent.startPlugins()
        defer { agent.stop() }
        // As the daemon starts it: the restore leaves the policy table's filters complete.
        try agent.restore()
        // HTTP rules are only accepted while the kernel's L7 enforcement runs.
        let http = agent.l7 != nil
        if !http { print("L7 enforcement unavailable (\(agent.l7Problem ?? "?")): the HTTP rule is left out") }
        let (problems, incremental, deltaSteps, kept) = try netns.run { try Self.churn(agent, http: http) }
        for problem in problems { XCTFail(problem) }
        // The series must have taken the incremental path, or it proved nothing about it.
        XCTAssertGreaterThanOrEqual(incremental, deltaSteps, "endpoints updated for changed peers only")
        // And maps must have gained allow entries only, or the generation rule was not tried both ways.
        XCTAssertGreaterThan(kept, 3, "maps changed with their generation kept")
    }

    private static let interfaces = 15

    /// The steps; returns the mismatches, how many endpoints took the incremental path, how many steps could, and
    /// how many times an endpoint's map changed while its generation stayed.
    private static func churn(_ agent: NodeAgent, http: Bool) throws -> ([String], Int, Int, Int) {
        var problems: [String] = []
        var kept = 0
        // Every change that withdraws keys clears what they left in the policy table's filters.
        agent.policyFilters.withLock { $0.interval = .zero }
        var previous = agent.state.withLock { $0 }
        func check(_ step: String) throws {
            problems += try mismatches(agent, step: step)
            let after = agent.state.withLock { $0 }
            problems += generationMismatches(previous, after, step: step, kept: &kept)
            previous = after
        }
        for (id, ns, labels, ports) in [
            (1, "ns-a", ["app=db"], [("metrics", 9100)]), (2, "ns-a", ["app=web"], []), (3, "ns-a", ["app=api"], []),
            (4, "ns-b", ["app=db"], []), (5, "ns-b", ["app=web", "tier=front"], []), (6, "ns-a", ["app=cache"], []),
        ] as [(UInt32, String, [String], [(String, Int)])] {
            try put(agent, id, ns, labels, namedPorts: ports)
        }
        _ = try agent.importPolicies(try PolicyParser.parse(try JSON.parse(policies(http: http))))
        try check("after the import")
        let before = agent.incrementalRegenerations.load(ordering: .relaxed)
        var deltaSteps = 0
        // Each step: a new label set (a new peer identity), a known one, or an identity going away; `delta` when a
        // peer identity appears or goes and no named port changes, so other endpoints can take the incremental path.
        let steps: [(String, delta: Bool, () throws -> Void)] = [
            ("create 7, new web/front pod of ns-a", true, { try put(agent, 7, "ns-a", ["app=web", "tier=front"]) }),
            ("create 8, same labels as 2", false, { try put(agent, 8, "ns-a", ["app=web"]) }),
            ("create 9, a bad pod of ns-b", true, { try put(agent, 9, "ns-b", ["app=bad"]) }),
            (
                "create 10, new web pod with named ports", false,
                {
                    try put(agent, 10, "ns-a", ["app=web", "version=2"], namedPorts: [("metrics", 9200)])
                }
            ),
            ("delete 7, its identity goes", true, { _ = try agent.deleteEndpoint(id: 7) }),
            ("delete 8, its identity stays with 2", false, { _ = try agent.deleteEndpoint(id: 8) }),
            ("relabel 2", true, { try put(agent, 2, "ns-a", ["app=web", "tier=front", "canary=yes"]) }),
            ("create 11, api pod of ns-b", true, { try put(agent, 11, "ns-b", ["app=api"]) }),
            ("delete 9, the bad pod", true, { _ = try agent.deleteEndpoint(id: 9) }),
            ("create 12, a db pod of ns-a", true, { try put(agent, 12, "ns-a", ["app=db", "replica=2"]) }),
            ("delete 10, the pod with named ports", false, { _ = try agent.deleteEndpoint(id: 10) }),
            // A pod on an address a /32 names takes that key of the ipcache: the prefix's identity goes, and comes
            // back (a new one) when the pod leaves; endpoints whose rules name the prefix must follow both ways.
            ("create 14 on the address a /32 names", false, { try put(agent, 14, "ns-b", ["app=other"]) }),
            ("delete 14, the /32 is a prefix again", false, { _ = try agent.deleteEndpoint(id: 14) }),
        ]
        for (step, delta, action) in steps {
            try action()
            try check(step)
            if delta { deltaSteps += 1 }
        }
        let incremental = agent.incrementalRegenerations.load(ordering: .relaxed) - before
        // An ipBlock that selects pods by address makes every endpoint change a full regeneration.
        _ = try agent.importPolicies(try PolicyParser.parse(try JSON.parse(ipBlockPolicy)))
        try check("after the ipBlock import")
        try put(agent, 13, "ns-b", ["app=web", "tier=back"])
        try check("create 13 under an ipBlock")
        _ = try agent.deleteEndpoint(id: 5)
        try check("delete 5 under an ipBlock")
        return (problems, incremental, deltaSteps, kept)
    }

    /// An endpoint's generation moves exactly when a flow its map allowed may be refused now (an entry gone or
    /// changed, a deny entry of a new key) or its enforcement changed: the datapath re-checks established flows
    /// only then. A map that gained allow entries only keeps it (counted in `kept`).
    private static func generationMismatches(
        _ before: AgentState, _ after: AgentState, step: String, kept: inout Int
    ) -> [String] {
        var problems: [String] = []
        for (id, old) in before.endpoints where old.policyGeneration != 0 {
            guard let new = after.endpoints[id] else { continue }
            let was = before.realized[id] ?? []
            let now = after.realized[id] ?? []
            let refuses =
                was.contains { now[$0.key] != $0 } || now.contains { $0.deny && was[$0.key] == nil }
                || old.enforceIngress != new.enforceIngress || old.enforceEgress != new.enforceEgress
            let moved = new.policyGeneration != old.policyGeneration
            if refuses != moved {
                let what = moved ? "moved" : "stayed"
                problems.append("\(step): endpoint \(id)'s generation \(what) (refuses: \(refuses))")
            }
            if !moved && was != now { kept += 1 }
        }
        return problems
    }

    /// Every endpoint's maps (read from the kernel), realized entries, enforcement and HTTP policy against a full
    /// computation from the current state.
    private static func mismatches(_ agent: NodeAgent, step: String) throws -> [String] {
        let state = agent.state.withLock { $0 }
        let peers = try agent.policyPeerInputs(state).0.peers
        var problems: [String] = []
        var total = 0
        let tableEntries = try agent.endpointDatapath.policyTable.entries()
        for endpoint in state.endpoints.values.sorted(by: { $0.id < $1.id }) {
            // Every rule matched, not only those the repository's selector index finds.
            let resolved = state.policy.resolve(
                endpoint: agent.policyLabels(of: endpoint, in: state), peers: peers,
                mode: agent.runtime.withLock { $0.policyEnforcement }, namedPorts: endpoint.namedPorts)
            let full = NodeAgent.DesiredPolicy(
                entries: PolicyMapEntries(resolved.entries.map(\.mapped)), enforceIngress: resolved.ingressEnforced,
                enforceEgress: resolved.egressEnforced, http: resolved.http)
            total += full.entries.count
            let kernel = try agent.endpointDatapath.realizedPolicy(endpoint.id)
            if kernel != full.entries {
                problems.append("\(step): endpoint \(endpoint.id)'s maps: \(difference(kernel, full.entries))")
            }
            // The policy table holds the same full-length keys (no bucket of a test's few keys is ever full).
            let table = tableEntries.filter { $0.ep_id == endpoint.id }
            let tableKeys = Set(table.map { [$0.identity, $0.meta & ~UInt32(NA_POLICY_TABLE_VALID), $0.rule_id] })
            let hashKeys = Set(
                full.entries.filter { PolicyMapLayout.isExact($0.key) }.map { entry -> [UInt32] in
                    let key = PolicyMapLayout.key(entry.key)
                    let deny = entry.deny ? UInt32(NA_POLICY_TABLE_DENY) : 0
                    return [
                        entry.identity, na_policy_table_key(key.direction, key.protocol, key.dport) | deny,
                        entry.ruleID,
                    ]
                })
            if tableKeys != hashKeys || table.count != tableKeys.count {
                problems.append("\(step): endpoint \(endpoint.id)'s policy table: \(tableKeys) against \(hashKeys)")
            }
            let realized = state.realized[endpoint.id] ?? []
            if realized != full.entries || state.realized[endpoint.id] == nil {
                problems.append("\(step): endpoint \(endpoint.id) realized: \(difference(realized, full.entries))")
            }
            if endpoint.enforceIngress != full.enforceIngress || endpoint.enforceEgress != full.enforceEgress {
                problems.append("\(step): endpoint \(endpoint.id)'s enforcement differs")
            }
            if (state.realizedHTTP[endpoint.id]?.ports ?? []) != full.http {
                problems.append("\(step): endpoint \(endpoint.id)'s HTTP policy differs")
            }
            if endpoint.policyRevision != state.policy.revision || endpoint.policyGeneration == 0 {
                problems.append("\(step): endpoint \(endpoint.id) is not at the current revision with a generation")
            }
        }
        if !state.policy.rules.isEmpty && total < 20 { problems.append("\(step): only \(total) entries in all") }
        problems += try filterMismatches(agent, state, step: step)
        return problems
    }

    /// The policy table's filters hold exactly the bits of the realized full-length keys: none missing (a key the
    /// datapath would skip), none left by a withdrawn key.
    private static func filterMismatches(_ agent: NodeAgent, _ state: AgentState, step: String) throws -> [String] {
        let keys = state.realized.values.flatMap { PolicyMapLayout.exactKeys($0.lazy.map(\.key)) }
        let table = try agent.endpointDatapath.policyTable
        let ports = try table.namedPorts()
        let peers = try table.namedPeers()
        var problems: [String] = []
        if !ports.complete || !peers.complete { problems.append("\(step): a policy filter is not complete") }
        let wantedPorts = Set(keys.map(PolicyTable.portBit))
        if Set(ports.bits) != wantedPorts {
            problems.append(
                "\(step): port filter missing \(wantedPorts.subtracting(ports.bits).sorted()), "
                    + "left \(Set(ports.bits).subtracting(wantedPorts).sorted())")
        }
        let wantedPeers = Set(keys.flatMap(PolicyTable.peerBits))
        if Set(peers.bits) != wantedPeers {
            problems.append(
                "\(step): peer filter missing \(wantedPeers.subtracting(peers.bits).count) bits, "
                    + "left \(Set(peers.bits).subtracting(wantedPeers).count)")
        }
        return problems
    }

    private static func difference(_ have: PolicyMapEntries, _ want: PolicyMapEntries) -> String {
        let extra = have.filter { want[$0.key] != $0 }.map { "\($0)" }.sorted()
        let missing = want.filter { have[$0.key] != $0 }.map { "\($0)" }.sorted()
        return "extra \(extra), missing \(missing)"
    }

    private static func put(
        _ agent: NodeAgent, _ id: UInt32, _ namespace: String, _ labels: [String],
        namedPorts: [(String, Int)] = []
    ) throws {
        var body: [String: JSON] = [
            "interface-name": .string("nai\(id)a"), "addressing": ["ipv4": .string("10.77.0.\(id)")],
            "k8s-namespace": .string(namespace), "k8s-pod-name": .string("pod-\(id)"),
            "labels": .array(labels.map { .string("k8s:\($0)") }),
        ]
        if !namedPorts.isEmpty {
            body["named-ports"] = .array(
                namedPorts.map { ["name": .string($0.0), "port": .int(Int64($0.1)), "protocol": .string("TCP")] })
        }
        _ = try agent.putEndpoint(id: id, request: try EndpointChangeRequest(json: .object(body), id: id))
    }

    /// Allow and deny, port ranges, named ports (the endpoint's own and each peer's), entities, CIDR, peers of
    /// another namespace, a rule opted out of default deny, a NetworkPolicy with a namespace selector, and an HTTP
    /// rule when the kernel can enforce it.
    private static func policies(http: Bool) -> String {
        let httpRules = http ? #", "rules": {"http": [{"method": "GET", "path": "/public/.*"}]}"# : ""
        return """
            [
              {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
               "metadata": {"name": "db", "namespace": "ns-a"},
               "spec": {"endpointSelector": {"matchLabels": {"app": "db"}},
                 "ingress": [
                   {"fromEndpoints": [{"matchLabels": {"app": "web"}}],
                    "toPorts": [{"ports": [{"port": "5432", "protocol": "TCP"}]}]},
                   {"fromEndpoints": [{"matchLabels": {"tier": "front"}}],
                    "toPorts": [{"ports": [{"port": "8000", "endPort": 8099, "protocol": "TCP"},
                                           {"port": "53", "protocol": "ANY"}]}]},
                   {"fromEndpoints": [{"matchLabels": {"app": "web"}}],
                    "toPorts": [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]},
                   {"fromEntities": ["all"], "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}]}]}],
                 "ingressDeny": [
                   {"fromEntities": ["all"], "toPorts": [{"ports": [{"port": "5432", "protocol": "TCP"}]}]},
                   {"fromEndpoints": [{"matchLabels": {"tier": "front"}}],
                    "toPorts": [{"ports": [{"port": "8000", "endPort": 8015, "protocol": "TCP"}]}]},
                   {"fromEndpoints": [{"matchLabels": {"app": "bad", "k8s:io.kubernetes.pod.namespace": "ns-b"}}]}]}},
              {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
               "metadata": {"name": "web", "namespace": "ns-a"},
               "spec": {"endpointSelector": {"matchLabels": {"app": "web"}},
                 "egress": [
                   {"toEndpoints": [{"matchLabels": {"app": "db"}}],
                    "toPorts": [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]},
                   {"toEndpoints": [{"matchLabels": {"app": "api"}}]},
                   {"toEntities": ["host", "cluster"], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]},
                   {"toCIDR": ["192.0.2.0/24"], "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]},
                   {"toCIDR": ["10.77.0.14/32"], "toPorts": [{"ports": [{"port": "8443", "protocol": "TCP"}]}]},
                   {"toCIDRSet": [{"cidr": "198.51.100.0/24", "except": ["198.51.100.128/25"]}]}],
                 "egressDeny": [
                   {"toEndpoints": [{"matchLabels": {"app": "bad", "k8s:io.kubernetes.pod.namespace": "ns-b"}}]}]}},
              {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
               "metadata": {"name": "api", "namespace": "ns-a"},
               "spec": {"endpointSelector": {"matchLabels": {"app": "api"}},
                 "ingress": [
                   {"fromEndpoints": [{"matchLabels": {"app": "web"}}],
                    "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]\(httpRules)}]}]}},
              {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
               "metadata": {"name": "open", "namespace": "ns-b"},
               "spec": {"endpointSelector": {}, "enableDefaultDeny": {"ingress": false, "egress": false},
                 "ingressDeny": [
                   {"fromEndpoints": [{"matchLabels": {"app": "bad"}}],
                    "toPorts": [{"ports": [{"port": "22", "protocol": "TCP"}]}]}]}},
              {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "db", "namespace": "ns-b"},
               "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
                 "ingress": [
                   {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}, {"namespaceSelector": {}}],
                    "ports": [{"port": 5432, "protocol": "TCP"}]}]}}
            ]
            """
    }

    private static let ipBlockPolicy = """
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": "block", "namespace": "ns-b"},
         "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
           "ingress": [{"from": [{"ipBlock": {"cidr": "10.77.0.0/28", "except": ["10.77.0.8/29"]}}],
                        "ports": [{"port": 8080, "protocol": "TCP"}]}]}}
        """
}
