import AgentAPI
import Foundation
import Glibc
import XCTest

/// Services through the daemon's socket load balancer with real traffic: the agent attaches at its own test cgroup
/// (`--cgroup-root`), clients in a pod and that cgroup connect to a service address and reach its backend pods,
/// which the tc programs and policy then see as the destination. No iptables or nftables rule takes part.
final class ServiceLoadBalancingTests: EndToEndTestCase {
    private static let frontendIP = "10.96.0.10"

    private struct Setup {
        var topology: Topology
        var agent: AgentProcess
        var traffic: ServiceTraffic
        var client: Pod
        var backends: [Pod]
        /// The identity of each backend's endpoint, by pod name.
        var identities: [String: Int64]
    }

    /// A client pod and `backends` backend pods (TCP and UDP servers on `port`), each registered as an endpoint
    /// (`app=client`, `app=backend`), and the agent with its load balancer.
    private func makeSetup(backends count: Int, port: UInt16 = 8080) throws -> Setup {
        let topology = try makeTopology()
        try XCTSkipIf(TestCgroup.mount == nil, "the socket load balancer needs a cgroup v2 mount")
        try XCTSkipIf((try? Shell.executablePath("python3")) == nil, "the service servers and clients need python3")
        let traffic = try ServiceTraffic(topology: topology)
        let client = try topology.addPod(namespace: "shop", name: "client", dualStack: false)
        let backends = try (1...count).map {
            try topology.addPod(namespace: "shop", name: "web-\($0)", dualStack: false)
        }
        for backend in backends { try traffic.startServer(on: backend, port: port, in: topology) }
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: client, labels: ["k8s:app=client"])
        var identities: [String: Int64] = [:]
        for (index, backend) in backends.enumerated() {
            let endpoint = try agent.registerEndpoint(id: 10 + index, pod: backend, labels: ["k8s:app=backend"])
            identities[backend.name] = try XCTUnwrap(endpoint["identity"]?["id"]?.intValue)
        }
        return Setup(
            topology: topology, agent: agent, traffic: traffic, client: client, backends: backends,
            identities: identities)
    }

    private func spec(_ ip: String, _ port: Int, _ proto: String = "TCP", backends: [Pod], backendPort: Int) -> JSON {
        [
            "frontend-address": ["ip": .string(ip), "port": .int(Int64(port)), "protocol": .string(proto)],
            "backend-addresses": .array(
                backends.map { ["ip": .string($0.ipv4), "port": .int(Int64(backendPort))] }),
            "flags": ["type": "ClusterIP", "name": "web", "namespace": "shop"],
        ]
    }

    /// PUTs the service and checks the agent programmed it.
    @discardableResult
    private func putService(_ id: Int, _ body: JSON, on agent: AgentProcess) throws -> JSON {
        let answer = try agent.api(.PUT, "/v1/service/\(id)", body)
        XCTAssertTrue(answer.status == 200 || answer.status == 201, "\(answer)")
        XCTAssertEqual(answer.json?["status"]?["realized"], true, "the load balancer runs: \(answer)")
        return try XCTUnwrap(answer.json)
    }

    func testAClusterIPServiceSpreadsConnectionsOverItsBackendsWithoutAnyRule() throws {
        let setup = try makeSetup(backends: 3)
        let agent = setup.agent
        try putService(1, spec(Self.frontendIP, 80, backends: setup.backends, backendPort: 8080), on: agent)

        let answer = try setup.traffic.client(
            "tcp", from: setup.client, to: Self.frontendIP, port: 80, count: 300, agent: agent)
        XCTAssertEqual(answer["errors"]?.arrayValue, [], "\(answer)")
        let names = answer["names"]?.objectValue ?? [:]
        XCTAssertEqual(Set(names.keys), Set(setup.backends.map(\.name)), "\(answer)")
        for (name, count) in names {
            XCTAssertGreaterThanOrEqual(count.intValue ?? 0, 60, "backend \(name) took too few of 300: \(answer)")
        }
        XCTAssertEqual(names.values.compactMap(\.intValue).reduce(0, +), 300)
        XCTAssertEqual(
            answer["peers"], .array([.string("\(Self.frontendIP):80")]), "getpeername shows the service, not a backend")

        // Outside the agent's cgroup no socket hook runs: the endpoint programs translate each packet instead,
        // and the client still talks to the service address.
        let outside = try setup.traffic.client(
            "tcp", from: setup.client, to: Self.frontendIP, port: 80, count: 30, agent: agent, outsideCgroup: true)
        XCTAssertEqual(outside["errors"]?.arrayValue, [], "\(outside)")
        XCTAssertTrue(
            Set((outside["names"]?.objectValue ?? [:]).keys).isSubset(of: setup.backends.map(\.name)), "\(outside)")
        XCTAssertEqual(outside["peers"], .array([.string("\(Self.frontendIP):80")]), "\(outside)")

        // The translation happened in the socket hooks: no namespace of the test holds a packet-filter rule.
        var checkedTools: Set<String> = []
        for netns in setup.topology.namespaces {
            for (tool, arguments) in [("iptables-save", [String]()), ("nft", ["list", "ruleset"])] {
                guard (try? Shell.executablePath(tool)) != nil else { continue }
                let listed = try Shell.capture(["nsenter", "--net=\(Netns.path(netns))", tool] + arguments)
                XCTAssertEqual(listed.status, 0, "\(listed)")
                let rules = listed.stdout.split(separator: "\n").filter {
                    $0.hasPrefix("-A ") || $0.trimmingCharacters(in: .whitespaces).hasPrefix("chain ")
                }
                XCTAssertEqual(rules, [], "\(tool) in \(netns)")
                checkedTools.insert(tool)
            }
        }
        XCTAssertFalse(checkedTools.isEmpty, "neither iptables-save nor nft is installed: no rule check ran")

        let health = try agent.getJSON("/v1/healthz")
        XCTAssertEqual(health["services"]?["load-balancer"], "running", "\(health)")
        XCTAssertEqual(health["services"]?["cgroup-root"]?.stringValue, agent.cgroupRoot)
        XCTAssertEqual(health["kernel"]?["features"]?.arrayValue?.contains("services"), true, "\(health)")
        let status = try agent.nodectl("status")
        XCTAssertTrue(
            status.stdout.contains("running at cgroup \(agent.cgroupRoot) (random backend selection)"), status.stdout)
    }

    func testUDPQueriesAreAnsweredFromTheServiceAddressBeforeAndAfterTheBackendsChange() throws {
        let setup = try makeSetup(backends: 3, port: 5353)
        let agent = setup.agent
        let first = Array(setup.backends.prefix(2))
        try putService(2, spec(Self.frontendIP, 53, "UDP", backends: first, backendPort: 5353), on: agent)

        let before = try setup.traffic.client(
            "udp", from: setup.client, to: Self.frontendIP, port: 53, count: 40, agent: agent)
        XCTAssertEqual(before["errors"]?.arrayValue, [], "\(before)")
        let names = before["names"]?.objectValue ?? [:]
        XCTAssertTrue(Set(names.keys).isSubset(of: first.map(\.name)), "\(before)")
        XCTAssertEqual(names.values.compactMap(\.intValue).reduce(0, +), 40)
        XCTAssertEqual(
            before["peers"], .array([.string("\(Self.frontendIP):53")]), "answers come from the service address")

        let last = [setup.backends[2]]
        try putService(2, spec(Self.frontendIP, 53, "UDP", backends: last, backendPort: 5353), on: agent)
        let after = try setup.traffic.client(
            "udp", from: setup.client, to: Self.frontendIP, port: 53, count: 20, agent: agent)
        XCTAssertEqual(after["errors"]?.arrayValue, [], "\(after)")
        XCTAssertEqual(after["names"], ["web-3": 20], "only the new backend answers")
        XCTAssertEqual(after["peers"], .array([.string("\(Self.frontendIP):53")]))
    }

    /// One `hold` connection through the service: its backend's name once connected, and its JSON answer once it
    /// ends (after `seconds`, or earlier when the connection ends).
    private func hold(_ setup: Setup, port: UInt16, seconds: Int, during change: (String) throws -> Void) throws
        -> JSON
    {
        let nameFile = "\(setup.traffic.directory)/held-\(UInt32.random(in: 0...UInt32.max))"
        let process = try setup.traffic.holdProcess(
            from: setup.client, to: Self.frontendIP, port: port, seconds: seconds, nameFile: nameFile,
            agent: setup.agent)
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let deadline = Date() + 5
        var name = ""
        while name.isEmpty {
            guard Date() < deadline, process.isRunning else { throw AgentHarnessError("the held connection failed") }
            usleep(20_000)
            name = (try? String(contentsOfFile: nameFile, encoding: .utf8)) ?? ""
        }
        try change(name)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return try JSON.parse(String(decoding: data, as: UTF8.self))
    }

    private func states(_ backends: [Pod], _ state: [String: String]) -> JSON {
        var body = spec(Self.frontendIP, 80, backends: backends, backendPort: 8080).objectValue ?? [:]
        body["backend-addresses"] = .array(
            backends.map { ["ip": .string($0.ipv4), "port": 8080, "state": .string(state[$0.name] ?? "active")] })
        return .object(body)
    }

    func testADeletedBackendsConnectionsEndWhileATerminatingOnesGoOn() throws {
        let setup = try makeSetup(backends: 2)
        let agent = setup.agent
        try putService(4, states(setup.backends, [:]), on: agent)

        let kept = try hold(setup, port: 80, seconds: 2) { name in
            try putService(4, states(setup.backends, [name: "terminating"]), on: agent)
        }
        XCTAssertEqual(kept["ended"], .null, "a terminating backend keeps its connection: \(kept)")
        XCTAssertGreaterThan(kept["exchanges"]?.intValue ?? 0, 10, "\(kept)")
        let busy = try XCTUnwrap(kept["name"]?.stringValue)
        let fresh = try setup.traffic.client(
            "tcp", from: setup.client, to: Self.frontendIP, port: 80, count: 20, agent: agent)
        XCTAssertNil(fresh["names"]?[busy], "no new connection goes to the terminating backend: \(fresh)")

        try putService(4, states(setup.backends, [:]), on: agent)
        let started = Date()
        let ended = try hold(setup, port: 80, seconds: 20) { name in
            try putService(4, states(setup.backends.filter { $0.name != name }, [:]), on: agent)
        }
        XCTAssertNotEqual(ended["ended"], .null, "the deleted backend's connection ended: \(ended)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 15, "it ended when the backend went, not at the end")
        let gone = try XCTUnwrap(ended["name"]?.stringValue)
        let after = try setup.traffic.client(
            "tcp", from: setup.client, to: Self.frontendIP, port: 80, count: 20, agent: agent)
        XCTAssertEqual(after["errors"]?.arrayValue, [], "\(after)")
        XCTAssertNil(after["names"]?[gone], "\(after)")
    }

    func testMaglevTablesServeClientsTheSocketHooksDoNotSee() throws {
        let topology = try makeTopology()
        try XCTSkipIf(TestCgroup.mount == nil, "the socket load balancer needs a cgroup v2 mount")
        let configFile = try topology.run.temporaryDirectory("maglev") + "/config.json"
        try #"{"services": {"backend-selection": "maglev", "maglev-table-size": 251}}"#.write(
            toFile: configFile, atomically: true, encoding: .utf8)
        let traffic = try ServiceTraffic(topology: topology)
        let client = try topology.addPod(namespace: "shop", name: "client", dualStack: false)
        let backends = try (1...3).map { try topology.addPod(namespace: "shop", name: "web-\($0)", dualStack: false) }
        for backend in backends { try traffic.startServer(on: backend, port: 8080, in: topology) }
        let agent = try startAgent(in: topology, configFile: configFile)
        try agent.registerEndpoint(id: 1, pod: client, labels: ["k8s:app=client"])
        for (index, backend) in backends.enumerated() {
            try agent.registerEndpoint(id: 10 + index, pod: backend, labels: ["k8s:app=backend"])
        }
        XCTAssertEqual(try agent.getJSON("/v1/healthz")["services"]?["backend-selection"], "maglev")
        try putService(5, spec(Self.frontendIP, 80, backends: backends, backendPort: 8080), on: agent)
        let maps = try agent.getJSON("/v1/map")["maps"]?.arrayValue ?? []
        let maglev = maps.first { $0["name"]?.stringValue == "na_lb_maglev" }
        XCTAssertEqual(maglev?["entries"]?.intValue, 1, "one table, for the one service: \(String(describing: maglev))")

        // A client outside the agent's cgroup: the endpoint programs translate its packets through the table.
        let answer = try traffic.client(
            "tcp", from: client, to: Self.frontendIP, port: 80, count: 60, agent: agent, outsideCgroup: true)
        XCTAssertEqual(answer["errors"]?.arrayValue, [], "\(answer)")
        let names = answer["names"]?.objectValue ?? [:]
        XCTAssertEqual(names.values.compactMap(\.intValue).reduce(0, +), 60, "\(answer)")
        XCTAssertGreaterThanOrEqual(names.count, 2, "distinct source ports hash to several backends: \(answer)")
        XCTAssertEqual(answer["peers"], .array([.string("\(Self.frontendIP):80")]), "replies come from the service")
    }

    func testEgressPolicyMeetsTheBackendNotTheServiceAddress() throws {
        let setup = try makeSetup(backends: 2)
        let agent = setup.agent
        try putService(1, spec(Self.frontendIP, 80, backends: setup.backends, backendPort: 8080), on: agent)
        let egress = { (app: String) -> JSON in
            networkPolicy(
                "shop", "client-egress",
                spec: [
                    "endpointSelector": ["matchLabels": ["app": "client"]],
                    "egress": [["toEndpoints": [["matchLabels": ["app": .string(app)]]]]],
                ])
        }

        try agent.importPolicies([egress("backend")])
        let allowed = try setup.traffic.client(
            "tcp", from: setup.client, to: Self.frontendIP, port: 80, count: 20, agent: agent)
        XCTAssertEqual(
            allowed["errors"]?.arrayValue, [], "egress to the backends' labels allows the service: \(allowed)")
        XCTAssertEqual(allowed["names"]?.objectValue?.values.compactMap(\.intValue).reduce(0, +), 20)

        try agent.importPolicies([egress("other")])
        let denied = try setup.traffic.client(
            "tcp", from: setup.client, to: Self.frontendIP, port: 80, count: 2, agent: agent)
        XCTAssertEqual(denied["errors"]?.arrayValue?.count, 2, "egress allows only app=other: \(denied)")
        let backendIPs = Set(setup.backends.map(\.ipv4))
        let flows = try agent.waitForFlows("verdict=DROPPED") { flows in
            flows.contains { backendIPs.contains($0["destination"]?["ip"]?.stringValue ?? "") }
        }
        let drop = try XCTUnwrap(
            flows.first { backendIPs.contains($0["destination"]?["ip"]?.stringValue ?? "") }, "\(flows.suffix(3))")
        XCTAssertEqual(drop["reason"], "policy denied", "\(drop)")
        XCTAssertEqual(drop["direction"], "egress", "\(drop)")
        XCTAssertEqual(drop["destination"]?["port"], 8080, "the backend's port, not the service's: \(drop)")
        let pod = try XCTUnwrap(setup.backends.first { $0.ipv4 == drop["destination"]?["ip"]?.stringValue })
        XCTAssertEqual(drop["destination"]?["pod"]?.stringValue, "shop/\(pod.name)", "\(drop)")
        XCTAssertEqual(drop["destination"]?["identity"]?.intValue, setup.identities[pod.name], "\(drop)")
        XCTAssertFalse(
            flows.contains { $0["destination"]?["ip"]?.stringValue == Self.frontendIP },
            "no packet leaves with the service address")
    }

    func testConnectionsThroughTheServiceSurviveAnAgentKillAndTheServicesComeBackTheSame() throws {
        let setup = try makeSetup(backends: 3)
        let agent = setup.agent
        try putService(1, spec(Self.frontendIP, 80, backends: setup.backends, backendPort: 8080), on: agent)
        try putService(
            2, spec(Self.frontendIP, 53, "UDP", backends: Array(setup.backends.prefix(1)), backendPort: 8080),
            on: agent)
        let before = try agent.getJSON("/v1/service")

        let done = DispatchSemaphore(value: 0)
        let outcome = Locked<Result<JSON, any Error>?>(nil)
        let traffic = setup.traffic
        let client = setup.client
        Thread {
            let result = Result {
                try traffic.client("steady", from: client, to: Self.frontendIP, port: 80, count: 9, agent: agent)
            }
            outcome.withLock { $0 = result }
            done.signal()
        }.start()

        sleep(2)
        agent.kill(signal: SIGKILL)
        XCTAssertEqual(agent.waitForExit(timeout: 5), .signaled(SIGKILL))
        sleep(1)
        try agent.start()
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "the client finished")
        let steady = try XCTUnwrap(outcome.current).get()
        XCTAssertEqual(steady["errors"]?.arrayValue, [], "no connection failed: \(steady)")
        XCTAssertGreaterThan(steady["opened"]?.intValue ?? 0, 100, "\(steady)")
        XCTAssertGreaterThan(steady["exchanges"]?.intValue ?? 0, 50, "\(steady)")

        XCTAssertEqual(try agent.getJSON("/v1/service"), before, "the same specs, realized, after the restart")
        let log = agent.stderrTail(lines: 200)
        XCTAssertTrue(log.contains("services restored"), log)
    }

    func testAStoppedAgentsServicesGoOnUntilCleanupDetachesTheHooks() throws {
        let setup = try makeSetup(backends: 1)
        let agent = setup.agent
        try putService(1, spec(Self.frontendIP, 80, backends: setup.backends, backendPort: 8080), on: agent)
        let attached = { () throws -> String in
            try Shell.run(["bpftool", "cgroup", "show", agent.cgroupRoot])
        }
        try XCTSkipIf((try? Shell.executablePath("bpftool")) == nil, "needs bpftool")
        let hooks = try attached()
        XCTAssertTrue(hooks.contains("na_sock4_connect"), hooks)

        XCTAssertEqual(agent.stop(), .exited(0))
        let whileStopped = try setup.traffic.client(
            "tcp", from: setup.client, to: Self.frontendIP, port: 80, count: 5, agent: agent)
        XCTAssertEqual(whileStopped["names"], ["web-1": 5], "the pinned links keep translating: \(whileStopped)")

        let cleanup = try Shell.capture(
            ["nsenter", "--net=\(Netns.path(agent.nodeNetns))", agent.binary, "cleanup"] + agent.arguments)
        XCTAssertEqual(cleanup.status, 0, "\(cleanup)")
        XCTAssertTrue(cleanup.stdout.contains("the socket load balancer's cgroup hooks"), cleanup.stdout)
        let remaining = try attached()
        XCTAssertFalse(remaining.contains("na_sock"), remaining)
        let after = try setup.traffic.client(
            "tcp", from: setup.client, to: Self.frontendIP, port: 80, count: 1, agent: agent)
        XCTAssertEqual(after["errors"]?.arrayValue?.count, 1, "nothing translates after cleanup: \(after)")
    }

    func testAnAgentThatCannotAttachRefusesToStartNamingTheCgroupRootAndTheWayOut() throws {
        let topology = try makeTopology()
        guard AgentProcess.locate("nodeagent") != nil else { throw XCTSkip("nodeagent binary not built") }
        let notADirectory = try topology.run.temporaryDirectory("cgroup") + "/file"
        try "".write(toFile: notADirectory, atomically: true, encoding: .utf8)
        // The last --cgroup-root wins over the harness's.
        let agent = try AgentProcess(
            topology: topology, extraArguments: ["--cgroup-root", notADirectory], start: false)
        XCTAssertThrowsError(try agent.start(timeout: 10))
        XCTAssertEqual(agent.exitStatus, .exited(1))
        let log = agent.stderrTail()
        XCTAssertTrue(log.contains("agent failed to start: creating the cgroup v2 mount point"), log)
        XCTAssertTrue(log.contains("services.cgroup-root is \(notADirectory)"), log)
        XCTAssertTrue(log.contains("services.enabled false runs the agent without the socket load balancer"), log)

        let disabled = try AgentProcess(
            topology: topology, configFile: try configFile(["services": ["enabled": false]]),
            extraArguments: ["--cgroup-root", notADirectory])
        let health = try disabled.getJSON("/v1/healthz")
        XCTAssertEqual(health["services"]?["load-balancer"], "not running", "\(health)")
        XCTAssertEqual(health["services"]?["enabled"], false)
        XCTAssertEqual(health["kernel"]?["features"]?.arrayValue?.contains("services"), false, "\(health)")
        let created = try disabled.api(
            .PUT, "/v1/service/1", spec(Self.frontendIP, 80, backends: [], backendPort: 80))
        XCTAssertEqual(created.json?["status"]?["realized"], false, "\(created)")
    }
}
