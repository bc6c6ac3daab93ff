import AgentAPI
import Foundation
import XCTest

/// The upstream network policy e2e model: Kubernetes namespaces x, y and z, pods a, b and c in each (labels
/// `pod=<name>`, namespaces labelled `ns=<namespace>` through Cilium's namespace-label convention), each serving
/// TCP and UDP echo on ports 80 and 81 (named as upstream names them, `serve-80-tcp`...), all registered with one
/// agent. Cases share it: they import policies,
/// probe every pair at once and delete the policies again.
final class NetworkPolicyModel {
    static let namespaces = ["x", "y", "z"]
    static let podNames = ["a", "b", "c"]
    static let ports: [UInt16] = [80, 81]

    /// One pod of the model: `x/a`.
    struct Member: Hashable, CustomStringConvertible {
        var namespace: String
        var name: String
        var description: String { "\(namespace)/\(name)" }
    }

    /// One connection kind probed between every pair.
    struct Service: Hashable, CustomStringConvertible {
        var port: UInt16
        var udp = false
        var description: String { "\(udp ? "UDP" : "TCP")/\(port)" }

        static let tcp80 = Service(port: 80)
        static let tcp81 = Service(port: 81)
        static let udp80 = Service(port: 80, udp: true)
        static let udp81 = Service(port: 81, udp: true)
    }

    let topology: Topology
    let agent: AgentProcess
    private(set) var pods: [Member: Pod] = [:]
    private(set) var endpointIDs: [Member: Int] = [:]
    var members: [Member] { pods.keys.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) } }

    init(_ testCase: EndToEndTestCase) throws {
        let topology = try testCase.makeTopology()
        for namespace in Self.namespaces {
            for name in Self.podNames {
                let member = Member(namespace: namespace, name: name)
                pods[member] = try Self.makePod(member, in: topology)
            }
        }
        self.topology = topology
        agent = try testCase.startAgent(in: topology)
        for member in members { try register(member) }
    }

    /// Adds a pod with its servers and registers it with the agent.
    func addPod(_ member: Member) throws {
        pods[member] = try Self.makePod(member, in: topology)
        try register(member)
    }

    private static func makePod(_ member: Member, in topology: Topology) throws -> Pod {
        let pod = try topology.addPod(namespace: member.namespace, name: member.name, dualStack: false)
        for port in ports {
            _ = try TCPServer(on: pod, port: port, in: topology)
            _ = try UDPServer(on: pod, port: port, in: topology)
        }
        return pod
    }

    /// The labels of a member: its pod label and its namespace's `ns` label (plus what `registerEndpoint` adds).
    static func labels(_ member: Member, pod: String? = nil, ns: String? = nil) -> [String] {
        ["k8s:pod=\(pod ?? member.name)", "k8s:\(namespaceLabel("ns"))=\(ns ?? member.namespace)"]
    }

    /// The endpoint label key a namespace label becomes.
    static func namespaceLabel(_ key: String) -> String { "io.cilium.k8s.namespace.labels.\(key)" }

    /// Upstream's port names: `serve-80-tcp`, `serve-81-udp`, ...
    static var namedPorts: JSON {
        .array(
            ports.flatMap { port in
                ["TCP", "UDP"].map { proto -> JSON in
                    [
                        "name": .string("serve-\(port)-\(proto.lowercased())"), "port": .int(Int64(port)),
                        "protocol": .string(proto),
                    ]
                }
            })
    }

    private func register(_ member: Member) throws {
        let id = endpointIDs.count + 1
        let pod = pods[member]!
        let request: JSON = [
            "interface-name": .string(pod.hostInterface), "addressing": ["ipv4": .string(pod.ipv4)],
            "labels": JSON(Self.labels(member)), "k8s-namespace": .string(member.namespace),
            "k8s-pod-name": .string(member.name), "named-ports": Self.namedPorts,
        ]
        let answer = try agent.api(.PUT, "/v1/endpoint/\(id)", request)
        guard answer.status == 201 else { throw AgentHarnessError("PUT /v1/endpoint/\(id) for \(member): \(answer)") }
        endpointIDs[member] = id
    }

    /// Replaces labels of a member's endpoint (`PATCH /v1/endpoint/{id}/labels`, `add` replaces a key's value).
    func relabel(_ member: Member, _ labels: [String]) throws {
        let answer = try agent.api(.PATCH, "/v1/endpoint/\(endpointIDs[member]!)/labels", ["add": JSON(labels)])
        guard answer.status == 200 else { throw AgentHarnessError("relabel \(member): \(answer)") }
    }

    /// Imports YAML policy documents through `nodectl policy import -` and waits until every endpoint has them.
    func apply(_ yaml: String) throws {
        let result = try agent.nodectl(["policy", "import", "-"], input: yaml)
        guard result.status == 0 else { throw AgentHarnessError("nodectl policy import: \(result)") }
        try agent.waitForPolicyRevision()
    }

    /// Deletes every policy and waits until every endpoint has seen it.
    func deleteAllPolicies() throws {
        let answer = try agent.api(.DELETE, "/v1/policy?all=true")
        guard answer.status == 200 else { throw AgentHarnessError("DELETE /v1/policy: \(answer)") }
        try agent.waitForPolicyRevision()
    }

    /// One connection a case checks.
    struct Probe: Hashable {
        var service: Service
        var from: Member
        var to: Member
    }

    /// Probes every ordered pair of members on every service at once (an expected drop costs its whole timeout,
    /// so they overlap) and returns which connections got their echo.
    func probe(_ services: [Service], timeout: TimeInterval = 0.8) -> [Probe: Bool] {
        probe(
            services.flatMap { service in
                members.flatMap { from in members.map { Probe(service: service, from: from, to: $0) } }
            }, timeout: timeout)
    }

    /// Runs `probes` at once and returns which got their echo.
    func probe(_ probes: [Probe], timeout: TimeInterval) -> [Probe: Bool] {
        let results = Locked<[Probe: Bool]>([:])
        let group = DispatchGroup()
        for probe in probes {
            let from = pods[probe.from]!.netns
            let to = pods[probe.to]!.ipv4
            let port = probe.service.port
            group.enter()
            Thread {
                let passed =
                    probe.service.udp
                    ? (try? udpExchange(from: from, to: to, port: port, timeout: timeout))?.passed
                    : (try? tcpConnect(from: from, to: to, port: port, timeout: timeout))?.passed
                results.withLock { $0[probe] = passed ?? false }
                group.leave()
            }.start()
        }
        group.wait()
        return results.current
    }
}

/// What a case expects of every connection: `allowed(from, to, service)`. A pod reaching itself never leaves its
/// namespace (the kernel delivers it on the pod's loopback), so it is always allowed, as upstream's tables say.
struct TruthTable {
    typealias Member = NetworkPolicyModel.Member
    typealias Service = NetworkPolicyModel.Service
    var allowed: (Member, Member, Service) -> Bool

    init(_ allowed: @escaping (Member, Member, Service) -> Bool) { self.allowed = allowed }

    static var allowAll: TruthTable { TruthTable { _, _, _ in true } }

    func expects(_ from: Member, _ to: Member, _ service: Service) -> Bool {
        from == to || allowed(from, to, service)
    }
}

extension EndToEndTestCase {
    /// Probes every pair of `model` on `services` and fails, printing expected and observed tables as upstream's
    /// e2e does (`.` reached, `X` not, `*` a cell that differs), for each service whose result differs.
    /// One case: applies `document`, checks `expected` as `assertTruthTable` does, then deletes every policy so
    /// the next case starts from none.
    func assertCase(
        _ model: NetworkPolicyModel, _ document: String, _ expected: TruthTable,
        services: [NetworkPolicyModel.Service] = [.tcp80, .tcp81, .udp80], _ context: String,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        try model.apply(document)
        assertTruthTable(model, expected, services: services, context, file: file, line: line)
        try model.deleteAllPolicies()
    }

    func assertTruthTable(
        _ model: NetworkPolicyModel, _ expected: TruthTable,
        services: [NetworkPolicyModel.Service] = [.tcp80, .tcp81, .udp80], _ context: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        typealias Probe = NetworkPolicyModel.Probe
        var observed = model.probe(services)
        // A connection the case allows gets a second, longer chance: hundreds of probes start at once, and on a
        // loaded machine one lost SYN outlasts the short timeout. One that the case denies gets none: if it
        // passed, the policy leaked.
        let missed = observed.filter { !$0.value && expected.expects($0.key.from, $0.key.to, $0.key.service) }
        if !missed.isEmpty {
            observed.merge(model.probe(Array(missed.keys), timeout: 3)) { _, again in again }
        }
        let members = model.members
        for service in services {
            var wrong = 0
            for from in members {
                for to in members
                where expected.expects(from, to, service) != observed[Probe(service: service, from: from, to: to)] {
                    wrong += 1
                }
            }
            guard wrong > 0 else { continue }
            func table(_ title: String, _ cell: (NetworkPolicyModel.Member, NetworkPolicyModel.Member) -> String)
                -> String
            {
                var out =
                    "\(title)\n  from\\to "
                    + members.map { $0.description.padding(toLength: 4, withPad: " ", startingAt: 0) }
                    .joined() + "\n"
                for from in members {
                    out += "  " + from.description.padding(toLength: 8, withPad: " ", startingAt: 0)
                    out += members.map { cell(from, $0).padding(toLength: 4, withPad: " ", startingAt: 0) }.joined()
                    out += "\n"
                }
                return out
            }
            let expectedTable = table("expected:") { expected.expects($0, $1, service) ? "." : "X" }
            let observedTable = table("observed (* differs):") { from, to in
                let got = observed[Probe(service: service, from: from, to: to)] ?? false
                return (got ? "." : "X") + (got != expected.expects(from, to, service) ? "*" : "")
            }
            XCTFail(
                "\(context): \(service): \(wrong) of \(members.count * members.count) connections differ\n"
                    + expectedTable + observedTable, file: file, line: line)
        }
    }
}
