import AgentAPI
import Foundation
import Glibc
import XCTest

/// The real agent against hostile or careless clients: oversized, malformed and mistyped bodies get a clear 4xx and
/// change nothing; ten thousand endpoints are handled in reasonable time; sixteen clients hammering the API in
/// parallel see no errors, and the state they leave is the state they asked for.
final class BadInputTests: EndToEndTestCase {
    private struct Setup {
        var topology: Topology
        var agent: AgentProcess
        var pod: Pod
    }

    /// An agent with one endpoint and the seed's default-deny policy, so rejected requests have state to damage.
    private func makeSetup(configFile: String? = nil) throws -> Setup {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "web-tier", name: "frontend", dualStack: false)
        let agent = try startAgent(in: topology, configFile: configFile)
        try agent.registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=frontend"])
        let result = try agent.nodectl("policy", "import", try fixture("default-deny-all.yaml"))
        XCTAssertEqual(result.status, 0, result.stderr)
        return Setup(topology: topology, agent: agent, pod: pod)
    }

    /// Sends each request, expects `status` and an error body with `code`, and checks nothing changed.
    private func assertRejected(
        _ agent: AgentProcess, _ cases: [(method: String, path: String, body: [UInt8], status: Int, code: String)],
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let before = try AgentSnapshot.take(socketPath: agent.socketPath)
        for item in cases {
            let client = try KeepAliveClient(socketPath: agent.socketPath)
            let response = try client.request(item.method, item.path, rawBody: item.body)
            let start = String(decoding: item.body.prefix(60), as: UTF8.self)
            let label = "\(item.method) \(item.path) with \(item.body.count) B \(start)"
            XCTAssertEqual(response.status, item.status, "\(label): \(response)", file: file, line: line)
            XCTAssertEqual(
                response.json?["error"]?["code"]?.stringValue, item.code, "\(label): \(response)", file: file,
                line: line)
            XCTAssertFalse(
                (response.json?["error"]?["message"]?.stringValue ?? "").isEmpty, "\(label): a message says why",
                file: file, line: line)
        }
        let after = try AgentSnapshot.take(socketPath: agent.socketPath)
        XCTAssertEqual(after.differences(from: before), [], "a rejected request changed state", file: file, line: line)
        XCTAssertEqual(
            try agent.api(.GET, "/v1/healthz").status, 200, "the agent is still serving", file: file, line: line)
    }

    func testOversizedMalformedAndMistypedBodiesAreRejectedWithoutEffect() throws {
        let s = try makeSetup()
        let endpoint = { (object: [String: JSON]) -> [UInt8] in
            var base: [String: JSON] = [
                "interface-name": .string(s.pod.hostInterface), "addressing": ["ipv4": .string(s.pod.ipv4)],
                "labels": ["k8s:app=other"],
            ]
            for (key, value) in object { base[key] = value }
            return Array(JSON.object(base).serialized().utf8)
        }
        let policy = { (spec: JSON) -> [UInt8] in
            Array(
                JSON.object([
                    "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                    "metadata": ["name": "bad", "namespace": "web-tier"], "spec": spec,
                ]).serialized().utf8)
        }
        let limit = 1 << 20
        let bigPolicy =
            Array(#"{"metadata":{"name":"x","namespace":"y"},"pad":""#.utf8)
            + [UInt8](repeating: UInt8(ascii: "a"), count: limit) + Array(#""}"#.utf8)
        let deep =
            [UInt8](repeating: UInt8(ascii: "["), count: 100_000)
            + [UInt8](repeating: UInt8(ascii: "]"), count: 100_000)
        let tooManyLabels = JSON.array((0...256).map { .string("k8s:l\($0)=v") })
        let longLabel = JSON.array([.string("k8s:app=" + String(repeating: "v", count: 100_000))])
        try assertRejected(
            s.agent,
            [
                // Over the body limit, both as one body and as a PUT to another route.
                ("PUT", "/v1/policy", bigPolicy, 413, "payload-too-large"),
                ("PUT", "/v1/endpoint/1", [UInt8](repeating: 0x20, count: limit + 1), 413, "payload-too-large"),
                // Not JSON, or JSON the parser refuses.
                ("PUT", "/v1/policy", deep, 400, "invalid-json"),
                (
                    "PUT", "/v1/policy",
                    Array("{\"metadata\":{\"name\":\"\u{FF}\"}}".utf8).map { $0 == 0xC3 ? 0xFF : $0 },
                    400, "invalid-json"
                ),
                ("PUT", "/v1/endpoint/1", [0x7B, 0x22, 0xC0, 0xAF, 0x22, 0x3A, 0x31, 0x7D], 400, "invalid-json"),
                (
                    "PUT", "/v1/policy", Array(#"{"metadata":{"name":"a","name":"b","namespace":"n"}}"#.utf8), 400,
                    "invalid-json"
                ),
                (
                    "PUT", "/v1/endpoint/1", Array(#"{"interface-name":"a","interface-name":"b"}"#.utf8), 400,
                    "invalid-json"
                ),
                ("PATCH", "/v1/config", Array(#"{"log-level":"info"} trailing"#.utf8), 400, "invalid-json"),
                ("PUT", "/v1/policy", [], 400, "invalid-json"),
                // Valid JSON of the wrong shape or type.
                ("PUT", "/v1/endpoint/1", endpoint(["labels": 5]), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/1", endpoint(["labels": [5]]), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/1", endpoint(["addressing": "10.0.0.1"]), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/1", endpoint(["addressing": ["ipv4": "10.0.0.300"]]), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/1", endpoint(["addressing": ["ipv4": "fd00::1"]]), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/1", endpoint(["interface-name": 7]), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/1", endpoint(["interface-name": "a/b"]), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/1", endpoint(["id": 2]), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/1", endpoint(["k8s-namespace": ["x"]]), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/1", endpoint(["unknown-field": true]), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/1", Array("[]".utf8), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/1", Array("null".utf8), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/0", endpoint([:]), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/99999999999", endpoint([:]), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/-1", endpoint([:]), 400, "invalid-field"),
                ("PATCH", "/v1/endpoint/1/labels", Array(#"{"add":"k8s:a=b"}"#.utf8), 400, "invalid-field"),
                ("PATCH", "/v1/config", Array(#"{"policy-enforcement":true}"#.utf8), 400, "invalid-field"),
                (
                    "PATCH", "/v1/config", Array(#"{"policy-enforcement":"always","bogus":1}"#.utf8), 400,
                    "invalid-field"
                ),
                ("PUT", "/v1/policy", policy(["endpointSelector": "all"]), 400, "invalid-field"),
                (
                    "PUT", "/v1/policy",
                    policy(["endpointSelector": [:], "egress": [["toPorts": [["ports": [["port": "99999"]]]]]]]),
                    400, "invalid-field"
                ),
                ("PUT", "/v1/policy", policy(["endpointSelector": [:], "ingress": "none"]), 400, "invalid-field"),
                ("PUT", "/v1/policy", Array("[]".utf8), 400, "invalid-field"),
                ("PUT", "/v1/policy", Array("42".utf8), 400, "invalid-field"),
                // Huge label sets: too many labels, or a label far too long.
                ("PUT", "/v1/endpoint/1", endpoint(["labels": tooManyLabels]), 400, "invalid-field"),
                ("PUT", "/v1/endpoint/1", endpoint(["labels": longLabel]), 400, "invalid-field"),
                (
                    "PATCH", "/v1/endpoint/1/labels", Array(JSON.object(["add": tooManyLabels]).serialized().utf8), 400,
                    "invalid-field"
                ),
                ("GET", "/v1/endpoint?labels=" + String(repeating: "k8s:a=b,", count: 300), [], 200, ""),
            ].filter { $0.status != 200 })

        // The largest label set accepted is accepted whole and reads back exactly, with the namespace label the
        // agent keeps on every endpoint of a namespace (so a relabelled pod stays under its namespace's policies).
        let maxLabels = (0..<256).map { "k8s:l\($0)=" + String(repeating: "v", count: 200) }.sorted()
        let big = try s.agent.api(.PATCH, "/v1/endpoint/1/labels", ["labels": JSON(maxLabels)])
        XCTAssertEqual(big.status, 200, "\(big)")
        XCTAssertEqual(
            big.json?["labels"]?.arrayValue?.compactMap(\.stringValue).sorted(),
            (maxLabels + ["k8s:io.kubernetes.pod.namespace=web-tier"]).sorted())
        // A long filter is answered, not refused: nothing carries all those labels.
        let filter = try s.agent.api(
            .GET, "/v1/endpoint?labels=" + (0..<300).map { "k8s:a\($0)=b" }.joined(separator: ","))
        XCTAssertEqual(filter.status, 200, "\(filter)")
        XCTAssertEqual(filter.json, [])
    }

    /// Thousands of endpoints on veth interfaces of the node namespace: created, listed, and deleted again, timed.
    /// The test command runs 2,000; `bench/endpoints.sh` runs 10,000 (`NODEAGENT_SCALE_ENDPOINTS`, at most 65,000:
    /// the addresses are 10.100.x.y).
    func testThousandsOfEndpoints() throws {
        let topology = try makeTopology()
        let count = min(Int(ProcessInfo.processInfo.environment["NODEAGENT_SCALE_ENDPOINTS"] ?? "") ?? 2000, 65_000)
        let names = (1...count).map { "nb\(topology.tag)\($0)" }
        var started = Date()
        try Shell.run(
            ["ip", "-n", topology.nodeNetns, "-batch", "-"],
            input: names.map { "link add \($0) type veth peer name \($0)p" }.joined(separator: "\n") + "\n",
            timeout: 300)
        let interfaceTime = Date().timeIntervalSince(started)
        // Deleting an endpoint sweeps its conntrack entries, a walk of the whole table: a smaller table keeps
        // thousands of deletions about the agent rather than about walking half a million empty slots.
        let config = "\(Topology.temporaryDirectory)/na\(topology.tag)-config.json"
        try #"{"map-sizes": {"na_ct": 16384}}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let agent = try startAgent(in: topology, configFile: config)
        let client = try KeepAliveClient(socketPath: agent.socketPath, timeout: 60)

        started = Date()
        for (index, name) in names.enumerated() {
            let id = index + 1
            let body: JSON = [
                "interface-name": .string(name), "addressing": ["ipv4": .string("10.100.\(id / 256).\(id % 256)")],
                "labels": .array([.string("k8s:app=app\(id % 100)"), "k8s:io.kubernetes.pod.namespace=bulk"]),
                "k8s-namespace": "bulk", "k8s-pod-name": .string("pod-\(id)"),
            ]
            let response = try client.send(.PUT, "/v1/endpoint/\(id)", body)
            guard response.status == 201 else { return XCTFail("PUT endpoint \(id): \(response)") }
        }
        let createTime = Date().timeIntervalSince(started)

        started = Date()
        let list = try client.send(.GET, "/v1/endpoint")
        let listTime = Date().timeIntervalSince(started)
        XCTAssertEqual(list.status, 200)
        let listed = list.json?.arrayValue ?? []
        XCTAssertEqual(listed.count, count)
        XCTAssertEqual(Set(listed.compactMap { $0["interface-name"]?.stringValue }), Set(names))
        XCTAssertTrue(listed.allSatisfy { $0["state"] == "ready" })
        let identities = try client.send(.GET, "/v1/identity?labels=k8s:io.kubernetes.pod.namespace=bulk")
        XCTAssertEqual(identities.json?.arrayValue?.count, 100, "one identity per label set, not per endpoint")
        XCTAssertEqual(try mapEntries(client, "na_endpoints"), count)

        started = Date()
        for id in 1...count {
            let response = try client.send(.DELETE, "/v1/endpoint/\(id)")
            guard response.status == 200 else { return XCTFail("DELETE endpoint \(id): \(response)") }
        }
        let deleteTime = Date().timeIntervalSince(started)
        XCTAssertEqual(try client.send(.GET, "/v1/endpoint").json, [])
        XCTAssertEqual(try mapEntries(client, "na_endpoints"), 0)
        // What stays are spare maps (made ahead of creates, or a deleted endpoint's kept for its id), at most 136,
        // and deleted endpoints' maps waiting to be removed 32 at a time: a bounded number, all empty.
        let pins = try FileManager.default.contentsOfDirectory(atPath: agent.bpfRoot).filter { $0.hasPrefix("na_pol_") }
        XCTAssertLessThanOrEqual(pins.count, 2 * 64 + 8 + 31, "every endpoint's policy map is gone")
        for pin in pins { XCTAssertEqual(try mapEntries(client, pin), 0, "\(pin) is an empty spare") }
        print(
            "\(count) endpoints: interfaces \(String(format: "%.1f", interfaceTime)) s, "
                + "create \(String(format: "%.1f", createTime)) s "
                + "(\(Int(Double(count) / createTime))/s), list \(Int(listTime * 1000)) ms, "
                + "delete \(String(format: "%.1f", deleteTime)) s (\(Int(Double(count) / deleteTime))/s)")
    }

    private func mapEntries(_ client: KeepAliveClient, _ name: String) throws -> Int? {
        let maps = try client.send(.GET, "/v1/map").json?["maps"]?.arrayValue ?? []
        return maps.first { $0["name"]?.stringValue == name }?["entries"]?.intValue.map { Int($0) }
    }

    /// Sixteen clients, each on one keep-alive connection, send 5,000 mixed requests: reads, endpoint changes on
    /// ids of their own, and policy imports. No request may fail, nothing may hang, and the final state is exactly
    /// what the clients left.
    func testSixteenClientsOfFiveThousandMixedRequests() throws {
        let topology = try makeTopology()
        let clients = 16
        let perClient = 5_000
        let endpointsPerClient = 4
        try Shell.run(
            ["ip", "-n", topology.nodeNetns, "-batch", "-"],
            input: (0..<clients * endpointsPerClient).map {
                "link add cc\(topology.tag)\($0) type veth peer name cc\(topology.tag)\($0)p"
            }
            .joined(separator: "\n") + "\n")
        let agent = try startAgent(in: topology)
        let socketPath = agent.socketPath
        let tag = topology.tag

        struct Outcome: Sendable {
            var requests = 0
            var failures: [String] = []
            /// Endpoint ids this client left in place.
            var present: Set<Int> = []
            var reconnects = 0
        }
        let outcomes = Locked([Outcome](repeating: Outcome(), count: clients))
        let group = DispatchGroup()
        let started = Date()
        for index in 0..<clients {
            group.enter()
            Thread {
                defer { group.leave() }
                var outcome = Outcome()
                defer { outcomes.withLock { $0[index] = outcome } }
                guard let client = try? KeepAliveClient(socketPath: socketPath, timeout: 60) else {
                    outcome.failures.append("client \(index) could not connect")
                    return
                }
                var generator = SystemRandomNumberGenerator()
                for step in 0..<perClient {
                    let slot = Int.random(in: 0..<endpointsPerClient, using: &generator)
                    let number = index * endpointsPerClient + slot
                    let id = number + 1
                    let method: HTTPMethod
                    let path: String
                    var body: JSON?
                    var accepted: Set<Int> = [200]
                    switch Int.random(in: 0..<100, using: &generator) {
                    case 0..<20: (method, path) = (.GET, "/v1/healthz")
                    case 20..<35: (method, path) = (.GET, "/v1/endpoint")
                    case 35..<45:
                        (method, path) = (.GET, "/v1/endpoint/\(id)")
                        accepted = outcome.present.contains(id) ? [200] : [404]
                    case 45..<55: (method, path) = (.GET, "/v1/identity")
                    case 55..<65: (method, path) = (.GET, "/v1/policy")
                    case 65..<80:
                        (method, path) = (.PUT, "/v1/endpoint/\(id)")
                        body = [
                            "interface-name": .string("cc\(tag)\(number)"),
                            "addressing": ["ipv4": .string("10.101.\(index).\(slot + 1)")],
                            "labels": .array([.string("k8s:app=c\(step % 3)"), .string("k8s:client=c\(index % 4)")]),
                        ]
                        accepted = [200, 201]
                    case 80..<92:
                        (method, path) = (.DELETE, "/v1/endpoint/\(id)")
                        accepted = outcome.present.contains(id) ? [200] : [404]
                    default:
                        (method, path) = (.PUT, "/v1/policy")
                        body = [
                            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                            "metadata": ["name": .string("client-\(index)"), "namespace": "default"],
                            "spec": [
                                "endpointSelector": ["matchLabels": ["client": .string("c\(index % 4)")]],
                                "ingress": [
                                    [
                                        "fromEndpoints": [["matchLabels": ["app": .string("c\(step % 3)")]]],
                                        "toPorts": [
                                            ["ports": [["port": .string("\(8000 + step % 100)"), "protocol": "TCP"]]]
                                        ],
                                    ]
                                ],
                            ],
                        ]
                    }
                    outcome.requests += 1
                    do {
                        let response = try client.send(method, path, body)
                        if !accepted.contains(response.status) {
                            outcome.failures.append("\(method) \(path): expected \(accepted.sorted()), got \(response)")
                            if outcome.failures.count > 5 { return }
                        }
                        if method == .PUT && path.hasPrefix("/v1/endpoint") && response.status < 300 {
                            outcome.present.insert(id)
                        } else if method == .DELETE && response.status == 200 {
                            outcome.present.remove(id)
                        }
                    } catch {
                        outcome.failures.append("\(method) \(path): \(error)")
                        return
                    }
                }
                outcome.reconnects = client.reconnects
            }.start()
        }
        // A hung request fails its client after the connection's 60 s timeout; the bound on the whole run only
        // stops a runaway (the run takes about 4 minutes on an idle two-core machine, more on a busy one).
        let finished = group.wait(timeout: .now() + 900)
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(finished, .success, "the clients did not finish within 900 s")
        guard finished == .success else { return }
        let results = outcomes.current
        let total = results.map(\.requests).reduce(0, +)
        print(
            "16 clients × 5000 requests: \(total) in \(String(format: "%.1f", elapsed)) s "
                + "(\(Int(Double(total) / elapsed))/s)")
        XCTAssertEqual(total, clients * perClient)
        XCTAssertEqual(results.flatMap(\.failures), [])
        XCTAssertEqual(results.map(\.reconnects).reduce(0, +), 0, "keep-alive connections stay open")

        // The final state is what the clients left, and the datapath agrees with it.
        let snapshot = try AgentSnapshot.take(socketPath: agent.socketPath)
        let expected = Set(results.flatMap(\.present))
        let listed = Set((snapshot.endpoints.arrayValue ?? []).compactMap { $0["id"]?.intValue }.map { Int($0) })
        XCTAssertEqual(listed, expected)
        XCTAssertEqual(
            Set(
                (snapshot.maps["na_endpoints"] ?? []).compactMap { $0["value"]?["endpoint-id"]?.intValue }.map {
                    Int($0)
                }),
            expected)
        XCTAssertEqual(Set(snapshot.policyMaps), Set(expected.map { String(format: "na_pol_%05d", $0) }))
        XCTAssertEqual((snapshot.policy["policies"]?.arrayValue ?? []).count, clients)
        for endpoint in snapshot.endpoints.arrayValue ?? [] {
            let id = try XCTUnwrap(endpoint["id"]?.intValue)
            let realized = try agent.api(.GET, "/v1/endpoint/\(id)/policy")
            let mapName = String(format: "na_pol_%05d", id)
            let hashName = String(format: "na_polh_%05d", id)
            XCTAssertEqual(
                realized.json?["entries"]?.arrayValue?.count,
                (snapshot.maps[mapName]?.count ?? 0) + (snapshot.maps[hashName]?.count ?? 0),
                "endpoint \(id): the policy the agent reports is the one in its map")
            XCTAssertEqual(realized.json?["revision"], snapshot.policy["revision"], "endpoint \(id) is up to date")
        }
        // And it all survives a restart unchanged.
        try agent.restart()
        XCTAssertEqual(try AgentSnapshot.take(socketPath: agent.socketPath).differences(from: snapshot), [])
    }
}
