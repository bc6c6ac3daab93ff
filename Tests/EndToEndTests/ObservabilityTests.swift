import AgentAPI
import Foundation
import NodeCtlKit
import XCTest

/// Flows with real traffic: the seed article's policies between web-tier/frontend and api-tier/backend-api, one
/// allowed connection (TCP 8080) and denied ones (TCP 9090, UDP), read back through `GET /v1/flows`, a follower,
/// and `nodectl observe`.
final class ObservabilityTests: EndToEndTestCase {
    static let frontendID = ObservabilityScenario.frontendID
    static let backendID = ObservabilityScenario.backendID

    func makeScenario(configFile: String? = nil) throws -> ObservabilityScenario {
        try ObservabilityScenario(self, configFile: configFile)
    }

    func testFlowRecordsOfAnAllowedAndADeniedConnection() throws {
        let s = try makeScenario()
        let before = Date().timeIntervalSince1970
        XCTAssertTrue(try tcpConnect(from: s.frontend, to: s.backend, port: 8080).passed, "frontend → backend:8080")
        XCTAssertTrue(try tcpConnect(from: s.frontend, to: s.backend, port: 9090).dropped, "frontend → backend:9090")
        let after = Date().timeIntervalSince1970

        let flows = try s.agent.waitForFlows { flows in
            flows.contains { $0["verdict"] == "DROPPED" } && flows.filter { $0["verdict"] == "FORWARDED" }.count >= 2
        }
        let allowed = flows.filter { $0["verdict"] == "FORWARDED" && $0["destination"]?["port"] == 8080 }
        let egress = allowed.filter { $0["direction"] == "egress" }
        let ingress = allowed.filter { $0["direction"] == "ingress" }
        XCTAssertEqual(egress.count, 1, "one new connection, one egress flow: \(allowed)")
        XCTAssertEqual(ingress.count, 1, "one new connection, one ingress flow at the backend: \(allowed)")
        let drops = flows.filter { $0["verdict"] == "DROPPED" }
        XCTAssertFalse(drops.isEmpty, "the denied SYN is reported: \(flows)")
        XCTAssertEqual(flows.count, egress.count + ingress.count + drops.count, "no other flows: \(flows)")

        // Everything but the source port and time is known exactly.
        func expected(
            verdict: String, reason: String, code: Int64, direction: String, endpoint: Int, port: Int64, rule: String?,
            sourcePort: JSON?, ifindex: Int32
        ) -> JSON {
            var object: [String: JSON] = [
                "verdict": .string(verdict), "reason": .string(reason), "reason-code": .int(code),
                "direction": .string(direction), "protocol": "TCP", "ip-version": 4, "endpoint": .int(Int64(endpoint)),
                "interface-index": .int(Int64(ifindex)),
                "source": [
                    "ip": .string(s.frontend.ipv4), "port": sourcePort ?? 0, "identity": .int(s.frontendIdentity),
                    "labels": .array(s.frontendLabels), "endpoint": .int(Int64(Self.frontendID)),
                    "pod": "web-tier/frontend", "namespace": "web-tier", "pod-name": "frontend",
                    "name": "web-tier/frontend",
                ],
                "destination": [
                    "ip": .string(s.backend.ipv4), "port": .int(port), "identity": .int(s.backendIdentity),
                    "labels": .array(s.backendLabels), "endpoint": .int(Int64(Self.backendID)),
                    "pod": "api-tier/backend-api", "namespace": "api-tier", "pod-name": "backend-api",
                    "name": "api-tier/backend-api",
                ],
            ]
            if let rule { object["rule"] = .string(rule) }
            return .object(object)
        }
        /// The flow without the fields that vary (time, length, rule id), for comparison.
        func stable(_ flow: JSON) -> JSON {
            var object = flow.objectValue ?? [:]
            for key in ["time", "length", "rule-id"] { object.removeValue(forKey: key) }
            return .object(object)
        }

        if let flow = egress.first {
            XCTAssertEqual(
                stable(flow),
                expected(
                    verdict: "FORWARDED", reason: "forwarded", code: 0, direction: "egress", endpoint: Self.frontendID,
                    port: 8080, rule: "web-tier/allow-frontend-to-backend egress[0]",
                    sourcePort: flow["source"]?["port"], ifindex: s.frontend.hostIfindex))
            XCTAssertGreaterThan(flow["rule-id"]?.intValue ?? 0, 0)
            XCTAssertGreaterThanOrEqual(flow["source"]?["port"]?.intValue ?? 0, 1024, "an ephemeral source port")
            XCTAssertGreaterThanOrEqual(flow["length"]?.intValue ?? 0, 14 + 20 + 20, "a SYN with headers: \(flow)")
        }
        if let flow = ingress.first {
            XCTAssertEqual(
                stable(flow),
                expected(
                    verdict: "FORWARDED", reason: "forwarded", code: 0, direction: "ingress", endpoint: Self.backendID,
                    port: 8080, rule: "api-tier/allow-ingress-to-backend ingress[0]",
                    sourcePort: egress.first?["source"]?["port"], ifindex: s.backend.hostIfindex))
        }
        for flow in drops {
            XCTAssertEqual(
                stable(flow),
                expected(
                    verdict: "DROPPED", reason: "policy denied", code: 133, direction: "egress",
                    endpoint: Self.frontendID,
                    port: 9090, rule: nil, sourcePort: flow["source"]?["port"],
                    ifindex: s.frontend.hostIfindex))
            XCTAssertEqual(flow["rule-id"], 0, "default deny: no rule decided")
        }
        for flow in flows {
            guard let time = flowTime(flow) else {
                XCTFail("flow without a valid time: \(flow)")
                continue
            }
            XCTAssertTrue(
                (before - 0.05)...(after + 0.05) ~= time, "wall-clock time \(time) within [\(before), \(after)]")
        }
        XCTAssertTrue(
            zip(flows, flows.dropFirst()).allSatisfy { (flowTime($0) ?? 0) <= (flowTime($1) ?? 0) }, "oldest first")
    }

    func testAllowedFlowSamplingIsConfigurableWhileDropsAlwaysShow() throws {
        let s = try makeScenario()
        /// Opens `count` allowed connections and one denied one; waits until the drop is recorded (events arrive
        /// in order per CPU, and the drop comes last), then returns the new allowed egress flows to port 8080.
        func allowedFlows(after count: Int) throws -> Int {
            let before = try s.agent.flows().count
            for _ in 0..<count {
                XCTAssertTrue(try tcpConnect(from: s.frontend, to: s.backend, port: 8080).passed)
            }
            XCTAssertTrue(try tcpConnect(from: s.frontend, to: s.backend, port: 9090).dropped)
            let flows = try s.agent.waitForFlows { $0.count > before && $0.last?["verdict"] == "DROPPED" }
            XCTAssertEqual(flows.last?["destination"]?["port"], 9090, "the drop is always reported")
            usleep(200_000)  // the other CPU's events, if any, are in by now
            return try s.agent.flows().dropFirst(before).filter {
                $0["verdict"] == "FORWARDED" && $0["direction"] == "egress" && $0["destination"]?["port"] == 8080
            }.count
        }

        XCTAssertEqual(try allowedFlows(after: 5), 5, "by default every allowed new connection is reported")
        try s.agent.setConfig(["allowed-flow-sampling": 0])
        XCTAssertEqual(try allowedFlows(after: 5), 0, "0: none")
        try s.agent.setConfig(["allowed-flow-sampling": 2])
        let sampled = try allowedFlows(after: 40)
        XCTAssertTrue((5...35).contains(sampled), "2: about one in two of 40, got \(sampled)")
        try s.agent.setConfig(["allowed-flow-sampling": 1])
        XCTAssertEqual(try allowedFlows(after: 3), 3, "1: every one again")
    }

    func testFiltersSelectFlowsAndRejectBadParameters() throws {
        let s = try makeScenario()
        XCTAssertTrue(try tcpConnect(from: s.frontend, to: s.backend, port: 8080).passed)
        XCTAssertTrue(try tcpConnect(from: s.frontend, to: s.backend, port: 9090).dropped)
        let all = try s.agent.waitForFlows { $0.contains { $0["verdict"] == "DROPPED" } && $0.count >= 3 }

        func matching(_ query: String) throws -> [JSON] { try s.agent.flows(query + "&last=10000") }
        let drops = all.filter { $0["verdict"] == "DROPPED" }
        let forwarded = all.filter { $0["verdict"] == "FORWARDED" }
        XCTAssertEqual(try matching("verdict=DROPPED"), drops)
        XCTAssertEqual(try matching("verdict=forwarded"), forwarded)
        XCTAssertEqual(try matching("verdict=ALLOWED"), forwarded, "ALLOWED is FORWARDED")
        XCTAssertEqual(try matching("reason=133"), drops)
        XCTAssertEqual(try matching("reason=policy%20denied"), drops)
        XCTAssertEqual(try matching("reason=181"), [])
        XCTAssertEqual(try matching("from-pod=web-tier/frontend&to-pod=api-tier/backend-api"), all)
        XCTAssertEqual(try matching("from-pod=api-tier/backend-api"), [])
        XCTAssertEqual(try matching("pod=api-tier/backend-api"), all)
        XCTAssertEqual(try matching("from-endpoint=1&to-endpoint=2"), all)
        XCTAssertEqual(try matching("to-endpoint=1"), [])
        XCTAssertEqual(try matching("port=9090"), drops)
        XCTAssertEqual(try matching("port=8080&verdict=FORWARDED"), forwarded)
        XCTAssertEqual(try matching("protocol=tcp"), all)
        XCTAssertEqual(try matching("protocol=UDP"), [])
        XCTAssertEqual(try matching("ip=\(s.backend.ipv4)"), all)
        XCTAssertEqual(try matching("from-ip=\(s.frontend.ipv4)&to-ip=\(s.backend.ipv4)"), all)
        XCTAssertEqual(try matching("to-ip=\(s.frontend.ipv4)"), [])
        XCTAssertEqual(try matching("label=k8s:app=backend-api"), all)
        XCTAssertEqual(try matching("label=app=frontend,k8s:io.kubernetes.pod.namespace=web-tier"), all)
        XCTAssertEqual(
            try matching("label=k8s:app=frontend,k8s:io.kubernetes.pod.namespace=api-tier"), [],
            "all labels of one filter on one side")
        XCTAssertEqual(try matching("since=\(Int(Date().timeIntervalSince1970) + 60)"), [])
        XCTAssertEqual(try matching("since=2000-01-01T00:00:00Z"), all)
        XCTAssertEqual(try s.agent.flows("last=1"), Array(all.suffix(1)), "last=N: the newest N")

        for (query, field) in [
            ("verdict=MAYBE", "verdict"), ("last=0", "last"), ("port=70000", "port"),
            ("protocol=carrier-pigeon", "protocol"),
            ("from-pod=frontend", "from-pod"), ("reason=gremlins", "reason"), ("since=yesterday", "since"),
            ("ip=10.0.0.300", "ip"), ("colour=blue", "colour"), ("follow=perhaps", "follow"),
            ("to-endpoint=x", "to-endpoint"),
            ("label=a%20b", "label"),
        ] {
            let answer = try s.agent.api(.GET, "/v1/flows?\(query)")
            XCTAssertEqual(answer.status, 400, "\(query): \(answer)")
            XCTAssertEqual(answer.json?["error"]?["field"]?.stringValue, field, "\(query): \(answer)")
        }
    }

    func testFollowerSeesANewDropWithinOneSecond() throws {
        let s = try makeScenario()
        let received = Locked<[(JSON, Date)]>([])
        let stop = Locked(false)
        let ended = DispatchSemaphore(value: 0)
        let client = AgentClient(socketPath: s.agent.socketPath)
        let failure = Locked<String?>(nil)
        Thread {
            var selection = FlowSelection()
            selection.verdict = "DROPPED"
            do {
                try client.followFlows(selection) { item in
                    if let item { received.withLock { $0.append((item, Date())) } }
                    return stop.current ? .stop : .continue
                }
            } catch {
                failure.withLock { $0 = "\(error)" }
            }
            ended.signal()
        }.start()
        let joined = Locked(false)
        defer {
            stop.withLock { $0 = true }
            if !joined.current { ended.wait() }
        }
        let following = try s.agent.waitForMetrics { $0.value("nodeagent_flow_followers") == 1 }
        XCTAssertEqual(following.value("nodeagent_flow_followers"), 1, "the follower is subscribed")

        let sent = Date()
        try sendDatagrams(from: s.frontend, to: s.backend.ipv4, port: 5353, count: 1)
        let deadline = Date() + 3
        while received.current.isEmpty && Date() < deadline { usleep(10_000) }
        let lines = received.current
        XCTAssertNil(failure.current)
        guard let (flow, arrival) = lines.first else { return XCTFail("no flow reached the follower within 3 s") }
        XCTAssertLessThan(arrival.timeIntervalSince(sent), 1.0, "the drop reached the follower within one second")
        XCTAssertEqual(flow["verdict"], "DROPPED")
        XCTAssertEqual(flow["protocol"], "UDP")
        XCTAssertEqual(flow["destination"]?["port"], 5353)
        XCTAssertEqual(flow["source"]?["pod"], "web-tier/frontend")
        XCTAssertEqual(flow["reason"], "policy denied")

        // An allowed connection is not a drop: the follower's filter keeps it out.
        XCTAssertTrue(try tcpConnect(from: s.frontend, to: s.backend, port: 8080).passed)
        usleep(300_000)
        XCTAssertEqual(received.current.count, 1, "only the drop: \(received.current.map(\.0))")

        stop.withLock { $0 = true }
        XCTAssertEqual(ended.wait(timeout: .now() + 3), .success, "the follower stops on its next idle tick")
        joined.withLock { $0 = true }
        let gone = try s.agent.waitForMetrics { $0.value("nodeagent_flow_followers") == 0 }
        XCTAssertEqual(gone.value("nodeagent_flow_followers"), 0, "a departed follower is unsubscribed")
    }

    func testWorldAndCIDRPeersAreNamed() throws {
        let s = try ObservabilityScenario(self, external: ["198.51.100.10", "198.51.100.20"])
        let (listed, other) = (s.externalHosts[0], s.externalHosts[1])
        let result = try s.agent.nodectl("policy", "import", try fixture("allow-egress-to-external.yaml"))
        XCTAssertEqual(result.status, 0, result.stderr)
        try s.agent.waitForPolicyRevision()

        XCTAssertTrue(try tcpConnect(from: s.frontend, to: listed, port: 80).dropped, "web-tier has no egress to it")
        XCTAssertTrue(try tcpConnect(from: s.backend, to: listed, port: 80).passed, "api-tier may reach the /32")
        XCTAssertTrue(try tcpConnect(from: s.backend, to: other, port: 80).dropped, "not in the allowed prefixes")
        let flows = try s.agent.waitForFlows("port=80&last=1000") { flows in
            flows.contains { $0["verdict"] == "FORWARDED" }
                && Set(flows.compactMap { $0["source"]?["pod"]?.stringValue }).count == 2
                && flows.filter { $0["verdict"] == "DROPPED" }.count >= 2
        }
        let fromFrontend = flows.filter { $0["source"]?["pod"] == "web-tier/frontend" }
        XCTAssertFalse(fromFrontend.isEmpty, "\(flows)")
        for flow in fromFrontend {
            XCTAssertEqual(flow["verdict"], "DROPPED")
            // The destination is a CIDR identity (another namespace's policy names it), so it is named by prefix.
            XCTAssertEqual(flow["destination"]?["name"], "198.51.100.10/32", "\(flow)")
            XCTAssertEqual(flow["destination"]?["labels"], ["cidr:198.51.100.10/32", "reserved:world"])
            XCTAssertGreaterThanOrEqual(flow["destination"]?["identity"]?.intValue ?? 0, 1 << 24)
            XCTAssertNil(flow["destination"]?["pod"])
        }
        let allowed = flows.filter { $0["verdict"] == "FORWARDED" }
        XCTAssertEqual(allowed.count, 1, "\(allowed)")
        XCTAssertEqual(allowed.first?["source"]?["pod"], "api-tier/backend-api")
        XCTAssertEqual(allowed.first?["destination"]?["ip"], "198.51.100.10")
        XCTAssertEqual(allowed.first?["destination"]?["name"], "198.51.100.10/32")
        XCTAssertEqual(allowed.first?["rule"], "api-tier/allow-egress-to-external egress[0]")
        let toOther = flows.filter { $0["destination"]?["ip"] == "198.51.100.20" }
        XCTAssertFalse(toOther.isEmpty, "\(flows)")
        for flow in toOther {
            XCTAssertEqual(flow["verdict"], "DROPPED")
            XCTAssertEqual(flow["destination"]?["identity"], 2)
            XCTAssertEqual(flow["destination"]?["name"], "world")
            XCTAssertEqual(flow["destination"]?["labels"], ["reserved:world"])
        }

        let table = try s.agent.nodectl("observe", "--to-ip", "198.51.100.20")
        XCTAssertTrue(table.stdout.contains("api-tier/backend-api:"), table.stdout)
        XCTAssertTrue(
            table.stdout.contains(" -> 198.51.100.20:80 (world)  DROPPED  policy denied (egress)"), table.stdout)
    }

    func testNodectlObserveListsAndFollowsDrops() throws {
        let s = try makeScenario()
        XCTAssertTrue(try tcpConnect(from: s.frontend, to: s.backend, port: 9090).dropped)
        _ = try s.agent.waitForFlows("verdict=DROPPED") { !$0.isEmpty }

        let json = try s.agent.nodectl("observe", "--verdict", "DROPPED", "-o", "json")
        XCTAssertEqual(json.status, 0, json.stderr)
        let lines = json.stdout.split(separator: "\n").map { try? JSON.parse(String($0)) }
        XCTAssertFalse(lines.isEmpty)
        XCTAssertTrue(lines.allSatisfy { $0?["verdict"] == "DROPPED" }, json.stdout)
        XCTAssertTrue(
            lines.contains { $0?["destination"]?["port"] == 9090 && $0?["reason"] == "policy denied" }, json.stdout)

        let table = try s.agent.nodectl(
            "observe", "--verdict", "DROPPED", "--from-pod", "web-tier/frontend", "--to-pod", "api-tier/backend-api")
        XCTAssertEqual(table.status, 0, table.stderr)
        let pattern =
            #"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d\.\d{3}  "#
            + #"web-tier/frontend:\d+ -> api-tier/backend-api:9090  DROPPED  policy denied \(egress\)$"#
        let tableLines = table.stdout.split(separator: "\n").map(String.init)
        XCTAssertFalse(tableLines.isEmpty)
        for line in tableLines {
            XCTAssertNotNil(line.range(of: pattern, options: .regularExpression), "line: \(line)")
        }

        let none = try s.agent.nodectl("observe", "--verdict", "FORWARDED", "--port", "9090")
        XCTAssertEqual(none.status, 0)
        XCTAssertEqual(none.stdout, "")
        let bad = try s.agent.nodectl("observe", "--reason", "gremlins")
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("reason: unknown reason \"gremlins\""), bad.stderr)
        let usage = try s.agent.nodectl("observe", "--verdict", "MAYBE")
        XCTAssertEqual(usage.status, 64, usage.stderr)

        // -f streams: a drop made after the follower started shows up on its standard output.
        guard let binary = s.agent.nodectlBinary else { throw AgentHarnessError("nodectl not built") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--socket", s.agent.socketPath, "observe", "-f", "--verdict", "DROPPED", "--protocol", "UDP",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        _ = try s.agent.waitForMetrics { $0.value("nodeagent_flow_followers") == 1 }
        try sendDatagrams(from: s.frontend, to: s.backend.ipv4, port: 5353, count: 1)
        let collected = Locked("")
        let reader = output.fileHandleForReading
        let done = DispatchSemaphore(value: 0)
        Thread {
            while true {
                let data = reader.availableData
                if data.isEmpty { break }
                let text = collected.withLock {
                    $0 += String(decoding: data, as: UTF8.self)
                    return $0
                }
                if text.contains("\n") { break }
            }
            done.signal()
        }.start()
        XCTAssertEqual(done.wait(timeout: .now() + 3), .success, "nodectl observe -f printed the drop")
        XCTAssertTrue(
            collected.current.contains("web-tier/frontend:")
                && collected.current.contains(
                    "-> api-tier/backend-api:5353  DROPPED  policy denied (egress, UDP)"),
            collected.current)
        process.terminate()
    }
}
