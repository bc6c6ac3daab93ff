import AgentAPI
import Foundation
import Glibc
import XCTest

/// Crashes and restarts under real traffic: the kernel keeps enforcing the last policy while the agent is down and
/// while it restores, connections keep flowing, and the agent comes back with the same endpoints, identities,
/// policy revision and map contents. Plus: state that changed while the agent was down (a vanished interface), and
/// kills in the middle of changes.
final class RestartTests: EndToEndTestCase {
    private struct Seed {
        var topology: Topology
        var agent: AgentProcess
        var frontend: Pod
        var backend: Pod
        var postgres: Pod
    }

    /// The seed's three tiers with its policies, echo servers on the allowed and denied ports.
    private func makeSeed() throws -> Seed {
        let topology = try makeTopology()
        let frontend = try topology.addPod(namespace: "web-tier", name: "frontend", dualStack: false)
        let backend = try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        let postgres = try topology.addPod(namespace: "data-tier", name: "postgres", dualStack: false)
        for (pod, port) in [(backend, 8080), (backend, 9090), (postgres, 5432)] {
            _ = try TCPServer(on: pod, port: UInt16(port), in: topology)
        }
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: frontend, labels: ["k8s:app=frontend"])
        try agent.registerEndpoint(id: 2, pod: backend, labels: ["k8s:app=backend-api"])
        try agent.registerEndpoint(id: 3, pod: postgres, labels: ["k8s:app=postgres"])
        for file in ["default-deny-all.yaml", "allow-traffic-policy.yaml"] {
            let result = try agent.nodectl("policy", "import", try fixture(file))
            XCTAssertEqual(result.status, 0, "import \(file): \(result.stderr)")
        }
        try agent.waitForPolicyRevision()
        return Seed(topology: topology, agent: agent, frontend: frontend, backend: backend, postgres: postgres)
    }

    func testTrafficAndStateSurviveTwentyCrashesAndATermination() throws {
        let seed = try makeSeed()
        let agent = seed.agent
        let before = try AgentSnapshot.take(socketPath: agent.socketPath)
        XCTAssertEqual(before.policyMaps, ["na_pol_00001", "na_pol_00002", "na_pol_00003"])

        let stream = try StreamingConnection(from: seed.frontend.netns, to: seed.backend.ipv4, port: 8080)
        let allowed = ConnectionProber(from: seed.frontend.netns, to: seed.backend.ipv4, port: 8080)
        let deniedPort = ConnectionProber(
            from: seed.frontend.netns, to: seed.backend.ipv4, port: 9090, deadline: 0.5)
        let deniedPeer = ConnectionProber(
            from: seed.frontend.netns, to: seed.postgres.ipv4, port: 5432, deadline: 0.5)
        let probes = [allowed, deniedPort, deniedPeer]
        defer {
            stream.stop()
            probes.forEach { $0.stop() }
        }
        usleep(300_000)

        let started = Date()
        var downtimes: [TimeInterval] = []
        for round in 1...22 {
            // Twenty crashes, then two clean stops.
            let signal = round <= 20 ? SIGKILL : SIGTERM
            let down = Date()
            agent.kill(signal: signal)
            let exit = agent.waitForExit(timeout: 10)
            XCTAssertEqual(exit, signal == SIGKILL ? .signaled(SIGKILL) : .exited(0), "round \(round)")
            try agent.start()
            downtimes.append(Date().timeIntervalSince(down))
            let after = try AgentSnapshot.take(socketPath: agent.socketPath)
            XCTAssertEqual(
                after.differences(from: before), [],
                "round \(round) (\(signal == SIGKILL ? "SIGKILL" : "SIGTERM")): state changed across the restart")
            if after != before { break }
        }
        let elapsed = Date().timeIntervalSince(started)
        usleep(300_000)

        let streamTally = stream.stop()
        let allowedTally = allowed.stop()
        let deniedPortTally = deniedPort.stop()
        let deniedPeerTally = deniedPeer.stop()
        print(
            "restarts: 22 in \(String(format: "%.1f", elapsed)) s, down+restore "
                + "\(Int((downtimes.reduce(0, +) / Double(downtimes.count)) * 1000)) ms on average, "
                + "longest \(Int((downtimes.max() ?? 0) * 1000)) ms; stream: \(streamTally); allowed: \(allowedTally); "
                + "denied port: \(deniedPortTally); denied peer: \(deniedPeerTally)")

        XCTAssertNil(streamTally.broken, "the long-lived connection broke: \(streamTally)")
        XCTAssertEqual(streamTally.errors, 0, "\(streamTally)")
        XCTAssertGreaterThan(streamTally.rounds, 100, "the stream kept moving: \(streamTally)")

        XCTAssertGreaterThan(allowedTally.attempts, Int(elapsed * 50), "a connection every 10 ms: \(allowedTally)")
        XCTAssertEqual(allowedTally.echoed, allowedTally.attempts, "every allowed connection works: \(allowedTally)")
        for (name, tally) in [
            ("frontend → backend-api:9090", deniedPortTally), ("frontend → postgres", deniedPeerTally),
        ] {
            XCTAssertGreaterThan(tally.attempts, Int(elapsed * 50), "\(name): \(tally)")
            XCTAssertEqual(tally.connected, 0, "\(name) must never connect: \(tally)")
            XCTAssertEqual(tally.timedOut, tally.attempts, "\(name): every handshake is dropped: \(tally)")
        }
        // The programs stayed attached through every restart: the same kernel objects enforce.
        for pod in [seed.frontend, seed.backend, seed.postgres] {
            let filters = try TCFilters.show(pod.hostInterface, "ingress", in: seed.topology.nodeNetns)
            XCTAssertTrue(filters.contains("from_endpoint"), "\(pod.hostInterface): \(filters)")
        }
    }

    func testEndpointWhoseInterfaceVanishedWhileDownIsRemoved() throws {
        let seed = try makeSeed()
        let agent = seed.agent
        let before = try AgentSnapshot.take(socketPath: agent.socketPath)
        let ifindex = Int64(seed.postgres.hostIfindex)
        XCTAssertTrue(before.maps["na_endpoints"]!.contains { $0["key"]?["ifindex"]?.intValue == ifindex })

        agent.kill(signal: SIGKILL)
        agent.waitForExit()
        try Shell.run(["ip", "-n", seed.topology.nodeNetns, "link", "delete", seed.postgres.hostInterface])
        try agent.start()

        let after = try AgentSnapshot.take(socketPath: agent.socketPath)
        XCTAssertEqual(after.endpoints.arrayValue?.compactMap { $0["id"]?.intValue }, [1, 2])
        // Its policy maps hold nothing (emptied, they may stay as a spare for the next endpoint under id 3).
        XCTAssertEqual(after.policyMaps, ["na_pol_00001", "na_pol_00002"], "its policy map is gone")
        XCTAssertEqual(after.maps["na_pol_00003"] ?? [], [], "its policy map is emptied")
        XCTAssertFalse(
            after.maps["na_endpoints"]!.contains { $0["key"]?["ifindex"]?.intValue == ifindex }, "its row is gone")
        XCTAssertFalse(
            after.maps["na_ipcache"]!.contains { $0["key"]?["prefix"]?.stringValue == "\(seed.postgres.ipv4)/32" },
            "its address left the ipcache")
        let postgresIdentity = before.endpoints.arrayValue?.first { $0["id"]?.intValue == 3 }?["identity"]?["id"]
        XCTAssertFalse(
            after.identities.arrayValue!.contains { $0["id"] == postgresIdentity }, "its identity was released")
        // The others are untouched, and the state on disk agrees: another restart changes nothing.
        XCTAssertEqual(
            after.endpoints.arrayValue?.filter { $0["id"]?.intValue != 3 },
            before.endpoints.arrayValue?.filter { $0["id"]?.intValue != 3 })
        XCTAssertEqual(after.policy, before.policy)
        XCTAssertTrue(try tcpConnect(from: seed.frontend, to: seed.backend, port: 8080).passed)
        try agent.restart()
        XCTAssertEqual(try AgentSnapshot.take(socketPath: agent.socketPath).differences(from: after), [])
    }

    /// Kills the agent at random moments while a client changes endpoints and policies as fast as it can: every
    /// restart must succeed, and what the agent reports must match what the maps hold.
    func testKillsInTheMiddleOfChangesLeaveConsistentState() throws {
        let topology = try makeTopology()
        let count = 24
        try Shell.run(
            ["ip", "-n", topology.nodeNetns, "-batch", "-"],
            input: (1...count).map { "link add dmy\(topology.tag)\($0) type veth peer name dmy\(topology.tag)\($0)p" }
                .joined(separator: "\n") + "\n")
        let agent = try startAgent(in: topology)
        let stop = Locked(false)
        let outcomes = Locked([Int: Int]())

        for round in 1...8 {
            stop.withLock { $0 = false }
            let done = DispatchSemaphore(value: 0)
            let socketPath = agent.socketPath
            let tag = topology.tag
            Thread {
                defer { done.signal() }
                guard let client = try? KeepAliveClient(socketPath: socketPath, timeout: 5) else { return }
                var step = round * 1000
                while !stop.current {
                    step += 1
                    let id = step % count + 1
                    let response: RawResponse?
                    switch step % 4 {
                    case 0, 1:
                        let body: JSON = [
                            "interface-name": .string("dmy\(tag)\(id)"),
                            "addressing": ["ipv4": .string("10.99.\(step % 7).\(id)")],
                            "labels": .array([.string("k8s:app=a\(step % 5)")]),
                        ]
                        response = try? client.send(.PUT, "/v1/endpoint/\(id)", body)
                    case 2:
                        response = try? client.send(.DELETE, "/v1/endpoint/\(id)")
                    default:
                        let policy: JSON = [
                            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                            "metadata": ["name": .string("p\(step % 3)"), "namespace": "default"],
                            "spec": [
                                "endpointSelector": ["matchLabels": ["app": .string("a\(step % 5)")]],
                                "ingress": [["toPorts": [["ports": [["port": .string("\(1000 + step % 50)")]]]]]],
                            ],
                        ]
                        response = try? client.send(.PUT, "/v1/policy", policy)
                    }
                    guard let response else { return }  // the agent died under us
                    outcomes.withLock { $0[response.status, default: 0] += 1 }
                }
            }.start()
            usleep(useconds_t(UInt32.random(in: 50_000...400_000)))
            agent.kill(signal: SIGKILL)
            agent.waitForExit()
            stop.withLock { $0 = true }
            done.wait()
            try agent.start()
            try assertConsistent(agent, round: round)
        }
        let statuses = outcomes.current
        XCTAssertEqual(statuses.keys.filter { $0 >= 500 }, [], "no server errors: \(statuses)")
        XCTAssertGreaterThan(statuses.values.reduce(0, +), 50, "changes were made: \(statuses)")
    }

    /// A policy with CIDR rules (whose identities a plugin holds) survives a crash like any other.
    func testCIDRPolicySurvivesACrash() throws {
        let seed = try makeSeed()
        let agent = seed.agent
        let cidr: JSON = [
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": ["name": "to-external", "namespace": "web-tier"],
            "spec": [
                "endpointSelector": ["matchLabels": ["app": "frontend"]],
                "egress": [["toCIDRSet": [["cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]]]]],
            ],
        ]
        let put = try agent.api(.PUT, "/v1/policy", cidr)
        XCTAssertEqual(put.status, 200, "\(put)")
        let before = try AgentSnapshot.take(socketPath: agent.socketPath)
        XCTAssertTrue(
            before.maps["na_ipcache"]!.contains { $0["key"]?["prefix"]?.stringValue == "192.0.2.0/24" }, "\(before)")
        agent.kill(signal: SIGKILL)
        agent.waitForExit()
        try agent.start()
        XCTAssertEqual(try AgentSnapshot.take(socketPath: agent.socketPath).differences(from: before), [])
    }

    /// Pins as an agent without the hashes left them (full-length policy keys in the tries, `na_ipcache_host`
    /// empty): the datapath alone still enforces them, and the agent adopts them at start (hashes refilled, tries
    /// left with what is shorter) with the same policy and identities.
    func testPinsOfAnAgentWithoutTheHashesAreAdopted() throws {
        let seed = try makeSeed()
        let agent = seed.agent
        let root = agent.bpfRoot
        func pin(_ prefix: String, _ id: Int) -> String { "\(root)/\(prefix)\(String(format: "%05d", id))" }
        var before: [Int: Set<PolicyMapDump.Row>] = [:]
        for id in 1...3 { before[id] = Set(try PolicyMapDump.read(endpoint: id, root: root)) }
        let ipcacheBefore = try agent.ipcache()
        agent.kill(signal: SIGKILL)
        agent.waitForExit()

        var moved = 0
        for id in 1...3 where FileManager.default.fileExists(atPath: pin("na_polh_", id)) {
            for (key, value) in try BPFTool.dump(pin("na_polh_", id)) {
                try BPFTool.update(pin("na_pol_", id), key: key, value: value)
                moved += 1
            }
            try BPFTool.delete("\(root)/na_policy_exact", key: withUnsafeBytes(of: UInt32(id).littleEndian, Array.init))
            unlink(pin("na_polh_", id))
        }
        XCTAssertGreaterThan(moved, 0, "the seed's policy has full-length keys")
        for (key, _) in try BPFTool.dump("\(root)/na_ipcache_host") {
            try BPFTool.delete("\(root)/na_ipcache_host", key: key)
        }

        func assertSeedVerdicts(_ when: String) throws {
            XCTAssertTrue(try tcpConnect(from: seed.frontend, to: seed.backend, port: 8080).passed, when)
            XCTAssertFalse(try tcpConnect(from: seed.frontend, to: seed.backend, port: 9090, timeout: 0.5).passed, when)
            XCTAssertFalse(
                try tcpConnect(from: seed.frontend, to: seed.postgres, port: 5432, timeout: 0.5).passed, when)
        }
        try assertSeedVerdicts("the older layout, agent down")

        try agent.start()
        XCTAssertEqual(try agent.ipcache(), ipcacheBefore, "and the host hash holds the trie's hosts")
        for id in 1...3 {
            XCTAssertEqual(Set(try PolicyMapDump.read(endpoint: id, root: root)), before[id], "endpoint \(id)")
            let trie = try PolicyMapDump.read(pin: pin("na_pol_", id))
            let full = trie.filter { $0.identity != 0 && $0.proto != nil && $0.port != nil && $0.port == $0.endPort }
            XCTAssertEqual(full, [], "endpoint \(id): full-length keys moved out of the trie")
        }
        try assertSeedVerdicts("adopted")
        let held = try assertPolicyTable(
            AgentSnapshot.take(socketPath: agent.socketPath, alsoMaps: Self.filters), endpoints: [1, 2, 3],
            "adopted")
        XCTAssertGreaterThan(held, 0, "the table holds the moved keys")
    }

    /// State saved by earlier versions in one document is restored the same and rewritten one file per concern.
    func testSingleFileStateOfEarlierVersionsIsMigrated() throws {
        let seed = try makeSeed()
        let agent = seed.agent
        let before = try AgentSnapshot.take(socketPath: agent.socketPath)
        XCTAssertEqual(agent.stop(), .exited(0))
        let state = agent.stateDirectory
        // The current layout: a header, then the documents.
        let saved = try JSON.parse(try String(contentsOfFile: "\(state)/policy.json", encoding: .utf8)).arrayValue ?? []
        let header = saved.first ?? [:]
        var endpoints: [JSON] = []
        var identities: [Int64: JSON] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: "\(state)/endpoints").sorted() {
            var object =
                try JSON.parse(try String(contentsOfFile: "\(state)/endpoints/\(name)", encoding: .utf8))
                .objectValue ?? [:]
            let identity = try XCTUnwrap(object["identity"]?["id"]?.intValue)
            identities[identity] = ["id": .int(identity), "labels": object["identity"]?["labels"] ?? []]
            object["identity"] = .int(identity)
            object["version"] = nil
            endpoints.append(.object(object))
        }
        let legacy: JSON = [
            "version": 1, "endpoints": .array(endpoints),
            "identities": .array(identities.keys.sorted().map { identities[$0]! }),
            "policy": [
                "revision": header["revision"] ?? 0, "documents": .array(Array(saved.dropFirst())),
                "rule-names": header["rule-names"] ?? [:],
            ],
        ]
        try FileManager.default.removeItem(atPath: "\(state)/endpoints")
        try FileManager.default.removeItem(atPath: "\(state)/policy.json")
        try legacy.serialized(pretty: true).write(
            toFile: "\(state)/agent-state.json", atomically: true, encoding: .utf8)

        try agent.start()
        XCTAssertEqual(try AgentSnapshot.take(socketPath: agent.socketPath).differences(from: before), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(state)/agent-state.json"))
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: "\(state)/endpoints").sorted(),
            ["1.json", "2.json", "3.json"])
        try agent.restart()
        XCTAssertEqual(try AgentSnapshot.take(socketPath: agent.socketPath).differences(from: before), [])
    }

    /// What the agent lists agrees with the datapath: one row, one policy map (and pin) and the addresses in the
    /// ipcache for every endpoint, and nothing for endpoints it does not list.
    private func assertConsistent(_ agent: AgentProcess, round: Int, file: StaticString = #filePath, line: UInt = #line)
        throws
    {
        let snapshot = try AgentSnapshot.take(socketPath: agent.socketPath, alsoMaps: Self.filters)
        let endpoints = snapshot.endpoints.arrayValue ?? []
        let ids = Set(endpoints.compactMap { $0["id"]?.intValue })
        let rows = snapshot.maps["na_endpoints"] ?? []
        XCTAssertEqual(
            Set(rows.compactMap { $0["value"]?["endpoint-id"]?.intValue }), ids, "round \(round): endpoint rows",
            file: file, line: line)
        XCTAssertEqual(rows.count, ids.count, "round \(round): one row each", file: file, line: line)
        XCTAssertEqual(
            Set(snapshot.policyMaps), Set(ids.map { String(format: "na_pol_%05d", $0) }), "round \(round): policy maps",
            file: file, line: line)
        let pins = Set(
            (try FileManager.default.contentsOfDirectory(atPath: agent.bpfRoot)).filter { $0.hasPrefix("na_pol_") })
        // Beside the endpoints' maps, spares made ahead of creates: empty, and a bounded number of them.
        XCTAssertTrue(pins.isSuperset(of: snapshot.policyMaps), "round \(round): pins", file: file, line: line)
        let spares = pins.subtracting(snapshot.policyMaps)
        XCTAssertLessThanOrEqual(spares.count, 2 * 64 + 8, "round \(round): spares", file: file, line: line)
        for spare in spares {
            XCTAssertEqual(snapshot.maps[spare], [], "round \(round): \(spare) is empty", file: file, line: line)
        }
        let endpointAddresses = Set(endpoints.compactMap { $0["addressing"]?["ipv4"]?.stringValue }.map { "\($0)/32" })
        let cached = Set(
            (snapshot.maps["na_ipcache"] ?? []).filter { ($0["value"]?["identity"]?.intValue ?? 0) >= 256 }
                .compactMap { $0["key"]?["prefix"]?.stringValue })
        XCTAssertEqual(cached, endpointAddresses, "round \(round): ipcache", file: file, line: line)
        for endpoint in endpoints {
            let rowIdentity = rows.first { $0["value"]?["endpoint-id"] == endpoint["id"] }?["value"]?["identity"]
            XCTAssertEqual(
                rowIdentity, endpoint["identity"]?["id"], "round \(round): \(endpoint)", file: file, line: line)
        }
        try assertPolicyTable(snapshot, endpoints: ids, "round \(round)", file: file, line: line)
        // A second restart from the state just restored changes nothing.
        try agent.restart()
        XCTAssertEqual(
            try AgentSnapshot.take(socketPath: agent.socketPath, alsoMaps: Self.filters).differences(
                from: snapshot), [], "round \(round): restoring again", file: file, line: line)
    }

    /// The policy table (`na_ptable`) holds every endpoint's full-length keys as its hash does (no bucket of a
    /// test's few keys is full), and nothing of any other endpoint id. Returns how many entries it holds.
    @discardableResult
    private func assertPolicyTable(
        _ snapshot: AgentSnapshot, endpoints ids: Set<Int64>, _ when: String, file: StaticString = #filePath,
        line: UInt = #line
    ) throws -> Int {
        var table: [Int64: Set<String>] = [:]
        var ports: Set<String> = []
        for bucket in snapshot.maps["na_ptable"] ?? [] {
            for entry in bucket["value"]?["entries"]?.arrayValue ?? [] {
                // The filter's classes: TCP, UDP, SCTP and every other protocol together.
                let proto = entry["protocol"]?.stringValue ?? "?"
                ports.insert(Self.port(entry, protocol: ["TCP", "UDP", "SCTP"].contains(proto) ? proto : "other"))
                var object = entry.objectValue ?? [:]
                let id = object.removeValue(forKey: "endpoint-id")?.intValue ?? -1
                table[id, default: []].insert(JSON.object(object).serialized())
            }
        }
        for id in ids {
            let hash = Set(
                (snapshot.maps[String(format: "na_polh_%05d", id)] ?? []).map { entry -> String in
                    var object = entry["key"]?.objectValue ?? [:]
                    for (name, item) in entry["value"]?.objectValue ?? [:] { object[name] = item }
                    return JSON.object(object).serialized()
                })
            XCTAssertEqual(table[id] ?? [], hash, "\(when): endpoint \(id)'s policy table", file: file, line: line)
        }
        XCTAssertEqual(
            Set(table.keys).subtracting(ids), [], "\(when): table entries of no endpoint", file: file, line: line)
        // Every bit of a block is a key its endpoint's table (and so its hash) holds with the block's rule and
        // verdict; a node of a few endpoints has blocks for its keys.
        var bits = 0
        for block in snapshot.maps["na_ptable_bits"] ?? [] {
            var object = block["value"]?.objectValue ?? [:]
            let id = object.removeValue(forKey: "endpoint-id")?.intValue ?? -1
            for identity in object.removeValue(forKey: "identities")?.arrayValue ?? [] {
                object["identity"] = identity
                XCTAssertTrue(
                    table[id]?.contains(JSON.object(object).serialized()) ?? false,
                    "\(when): endpoint \(id)'s block bit \(JSON.object(object)) is no key of its table", file: file,
                    line: line)
                bits += 1
            }
        }
        XCTAssertEqual(bits > 0, !table.isEmpty, "\(when): \(bits) block bits", file: file, line: line)
        // Every table entry's port is named in the port filter, which is complete (restored).
        let words = snapshot.maps["na_ptable_ports"] ?? []
        let named = Set(
            words.flatMap { $0["value"]?["ports"]?.arrayValue ?? [] }.map {
                Self.port($0, protocol: $0["protocol"]?.stringValue ?? "?")
            })
        XCTAssertEqual(ports.subtracting(named), [], "\(when): table ports the filter hides", file: file, line: line)
        XCTAssertTrue(
            words.contains { $0["value"]?["complete"] == .bool(true) }, "\(when): port filter not complete",
            file: file, line: line)
        // So is the peer filter, which has bits set (the seed's policies name peers on ports).
        let peerWords = snapshot.maps["na_ptable_peers"] ?? []
        XCTAssertTrue(
            peerWords.contains { $0["value"]?["complete"] == .bool(true) }, "\(when): peer filter not complete",
            file: file, line: line)
        XCTAssertTrue(
            ports.isEmpty || peerWords.contains { !($0["value"]?["bits"]?.arrayValue ?? []).isEmpty },
            "\(when): peer filter empty", file: file, line: line)
        return table.values.reduce(0) { $0 + $1.count }
    }

    /// The maps beside the usual ones a snapshot takes here: the policy table's port and peer filters and its
    /// blocks.
    private static let filters: Set<String> = ["na_ptable_ports", "na_ptable_peers", "na_ptable_bits"]

    /// "egress TCP 8080" for a policy key or a port filter entry.
    private static func port(_ entry: JSON, protocol: String) -> String {
        "\(entry["direction"]?.stringValue ?? "?") \(`protocol`) \(entry["port"]?.intValue ?? -1)"
    }
}
