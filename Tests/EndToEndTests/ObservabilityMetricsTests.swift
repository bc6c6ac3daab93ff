import AgentAPI
import Foundation
import XCTest

/// `/v1/metrics` and map dumps against what the traffic and the API actually did, plus the config options
/// `flow-buffer-size` and `metrics-address`.
final class ObservabilityMetricsTests: EndToEndTestCase {
    private func scenario(configFile: String? = nil) throws -> ObservabilityScenario {
        try ObservabilityScenario(self, configFile: configFile)
    }

    func testDropCountersMoveByExactlyThePacketsSent() throws {
        let s = try scenario()
        let drop = ["reason": "policy denied", "direction": "egress"]
        let before = try s.agent.scrape()
        let packets = before.value("nodeagent_drop_packets_total", drop)
        let bytes = before.value("nodeagent_drop_bytes_total", drop)
        XCTAssertNotNil(packets, "every known reason is reported, zero until it happens")
        let count = 25
        let payload = 100
        try sendDatagrams(from: s.frontend, to: s.backend.ipv4, port: 5353, count: count, size: payload)
        _ = try s.agent.waitForMetrics {
            ($0.value("nodeagent_drop_packets_total", drop) ?? 0) >= (packets ?? 0) + Double(count)
        }
        usleep(300_000)  // anything late would show now
        let after = try s.agent.scrape()
        XCTAssertEqual(after.value("nodeagent_drop_packets_total", drop), (packets ?? 0) + Double(count))
        // Each datagram as the tc hook sees it: Ethernet (14) + IPv4 (20) + UDP (8) headers and the payload.
        XCTAssertEqual(
            after.value("nodeagent_drop_bytes_total", drop), (bytes ?? 0) + Double(count * (14 + 20 + 8 + payload)))
        XCTAssertEqual(
            after.value("nodeagent_drop_packets_total", ["reason": "policy denied", "direction": "ingress"]),
            before.value("nodeagent_drop_packets_total", ["reason": "policy denied", "direction": "ingress"]),
            "dropped at the frontend's egress, never reaching the backend")
        // The map dump lists the (reason, direction) slots that counted something, never the empty ones.
        let dump = try s.agent.api(.GET, "/v1/map/na_metrics?limit=10000").json?["entries"]?.arrayValue ?? []
        XCTAssertTrue(dump.allSatisfy { ($0["value"]?["packets"]?.intValue ?? 0) > 0 }, "\(dump)")
        let dumped = dump.first { $0["key"]?["reason"] == "policy denied" && $0["key"]?["direction"] == "egress" }
        XCTAssertEqual(
            dumped?["value"]?["packets"]?.intValue.map(Double.init), after.value("nodeagent_drop_packets_total", drop))
        XCTAssertEqual(dumped?["key"]?["reason-code"]?.intValue, 133, "\(dump)")

        // One socket, one flow: its drops within drop-event-interval (default 1s) are reported once.
        let flows = try s.agent.waitForFlows("protocol=UDP&port=5353&last=10000") { !$0.isEmpty }
        usleep(300_000)
        XCTAssertEqual(try s.agent.flows("protocol=UDP&port=5353&last=10000").count, 1, "one drop flow for the flow")
        XCTAssertTrue(flows.allSatisfy { $0["length"]?.intValue == Int64(14 + 20 + 8 + payload) })
        XCTAssertEqual(after.value("nodeagent_flow_events_lost_total"), 0)
        XCTAssertEqual(
            after.value("nodeagent_flow_events_emitted_total"), after.value("nodeagent_flows_received_total"),
            "every event the datapath wrote was read")

        let forwardedBefore = after.value("nodeagent_forwarded_packets_total", ["direction": "egress"]) ?? 0
        XCTAssertTrue(try tcpConnect(from: s.frontend, to: s.backend, port: 8080).passed)
        let moved = try s.agent.waitForMetrics {
            ($0.value("nodeagent_forwarded_packets_total", ["direction": "egress"]) ?? 0) >= forwardedBefore + 3
        }
        XCTAssertGreaterThanOrEqual(
            moved.value("nodeagent_forwarded_packets_total", ["direction": "egress"]) ?? 0, forwardedBefore + 3,
            "SYN, ACK and data at least")
    }

    func testAPIStateAndMapMetrics() throws {
        let s = try scenario()
        let before = try s.agent.scrape()
        let ok = ["route": "/v1/identity", "method": "GET", "status": "200"]
        let missing = ["route": "/v1/endpoint/{id}", "method": "GET", "status": "404"]
        for _ in 0..<2 { XCTAssertEqual(try s.agent.api(.GET, "/v1/identity").status, 200) }
        XCTAssertEqual(try s.agent.api(.GET, "/v1/endpoint/999").status, 404)
        let after = try s.agent.scrape()
        XCTAssertEqual(
            after.value("nodeagent_api_requests_total", ok), (before.value("nodeagent_api_requests_total", ok) ?? 0) + 2
        )
        XCTAssertEqual(
            after.value("nodeagent_api_requests_total", missing),
            (before.value("nodeagent_api_requests_total", missing) ?? 0) + 1, "route is the pattern, not the path")
        let timing = ["route": "/v1/identity", "method": "GET"]
        XCTAssertEqual(
            after.value("nodeagent_api_request_duration_seconds_count", timing),
            (before.value("nodeagent_api_request_duration_seconds_count", timing) ?? 0) + 2)
        XCTAssertEqual(
            after.value("nodeagent_api_request_duration_seconds_bucket", timing.merging(["le": "+Inf"]) { $1 }),
            after.value("nodeagent_api_request_duration_seconds_count", timing))
        XCTAssertEqual(after.types["nodeagent_api_request_duration_seconds"], "histogram")
        XCTAssertEqual(after.types["nodeagent_api_requests_total"], "counter")

        let identities = try s.agent.api(.GET, "/v1/identity").json?.arrayValue ?? []
        let policy = try s.agent.api(.GET, "/v1/policy").json
        XCTAssertEqual(after.value("nodeagent_endpoints"), 2)
        XCTAssertEqual(
            after.value("nodeagent_identities"), Double(identities.filter { ($0["id"]?.intValue ?? 0) >= 256 }.count))
        XCTAssertEqual(after.value("nodeagent_policies"), Double(policy?["policies"]?.arrayValue?.count ?? -1))
        XCTAssertEqual(after.value("nodeagent_policies"), 7, "three default-deny and four allow policies")
        XCTAssertEqual(after.value("nodeagent_policy_revision"), Double(policy?["revision"]?.intValue ?? -1))

        // Every map's capacity and entries, as GET /v1/map reports them.
        let maps = try s.agent.api(.GET, "/v1/map").json?["maps"]?.arrayValue ?? []
        XCTAssertFalse(maps.isEmpty)
        for map in maps {
            guard let name = map["name"]?.stringValue else { continue }
            XCTAssertEqual(after.value("nodeagent_map_capacity", ["map": name]), map["max-entries"]?.doubleValue, name)
            if map["type"] != "ringbuf" {
                XCTAssertEqual(after.value("nodeagent_map_entries", ["map": name]), map["entries"]?.doubleValue, name)
            }
        }
        XCTAssertEqual(after.value("nodeagent_map_entries", ["map": "na_endpoints"]), 2)
        // The endpoint's trie and its hash of full-length keys hold its policy between them.
        XCTAssertEqual(
            (after.value("nodeagent_map_entries", ["map": "na_pol_00001"]) ?? 0)
                + (after.value("nodeagent_map_entries", ["map": "na_polh_00001"]) ?? 0),
            Double(try s.agent.api(.GET, "/v1/endpoint/1/policy").json?["entries"]?.arrayValue?.count ?? -1))
    }

    func testMapDumpsMatchWhatWasProgrammed() throws {
        let s = try scenario()
        let endpoints = try s.agent.api(.GET, "/v1/map/na_endpoints").json?["entries"]?.arrayValue ?? []
        let ipcache = try s.agent.api(.GET, "/v1/map/na_ipcache?limit=10000").json?["entries"]?.arrayValue ?? []
        for (id, pod, identity) in [(1, s.frontend, s.frontendIdentity), (2, s.backend, s.backendIdentity)] {
            let row = endpoints.first { $0["key"]?["ifindex"]?.intValue == Int64(pod.hostIfindex) }
            XCTAssertEqual(row?["value"]?["endpoint-id"]?.intValue, Int64(id), "\(pod): \(endpoints)")
            XCTAssertEqual(row?["value"]?["identity"]?.intValue, identity, "\(pod)")
            XCTAssertEqual(row?["value"]?["ipv4"]?.stringValue, pod.ipv4, "\(pod)")
            XCTAssertEqual(row?["value"]?["enforce-egress"], true, "\(pod)")
            XCTAssertEqual(row?["value"]?["enforce-ingress"], true, "\(pod)")
            let cached = ipcache.first { $0["key"]?["prefix"]?.stringValue == "\(pod.ipv4)/32" }
            XCTAssertEqual(cached?["value"]?["identity"]?.intValue, identity, "\(pod): \(ipcache)")
        }
        XCTAssertEqual(endpoints.count, 2)

        for id in [1, 2] {
            let name = String(format: "na_pol_%05d", id)
            let hash = try s.agent.api(.GET, String(format: "/v1/map/na_polh_%05d?limit=10000", id))
            let dump =
                (try s.agent.api(.GET, "/v1/map/\(name)?limit=10000").json?["entries"]?.arrayValue ?? [])
                + (hash.status == 200 ? hash.json?["entries"]?.arrayValue ?? [] : [])
            let realized = try s.agent.api(.GET, "/v1/endpoint/\(id)/policy").json?["entries"]?.arrayValue ?? []
            func row(_ key: JSON?, deny: Bool?, rule: JSON?) -> String {
                ["identity", "direction", "protocol", "port", "end-port"].map { key?[$0]?.description ?? "-" }
                    .joined(separator: " ") + " deny=\(deny.map(String.init) ?? "?") rule=\(rule?.description ?? "?")"
            }
            let fromMap = Set(
                dump.map {
                    row(
                        $0["key"], deny: $0["value"]?["verdict"]?.stringValue.map { $0 == "deny" },
                        rule: $0["value"]?["rule-id"])
                })
            let fromAPI = Set(realized.map { row($0, deny: $0["deny"]?.boolValue, rule: $0["rule-id"]) })
            XCTAssertEqual(fromMap, fromAPI, "\(name) holds what GET /v1/endpoint/\(id)/policy reports")
            XCTAssertFalse(fromMap.isEmpty, "\(name) is programmed")
        }
    }

    func testConfiguredFlowBufferAndLoopbackMetricsListener() throws {
        let port = Int.random(in: 20000...60000)
        // Every drop reported (the datagrams are one flow, which the default interval would report once).
        let config = try configFile([
            "flow-buffer-size": 16, "metrics-address": .string("127.0.0.1:\(port)"), "drop-event-interval": 0,
        ])
        let s = try scenario(configFile: config)
        try sendDatagrams(from: s.frontend, to: s.backend.ipv4, port: 5353, count: 40)
        _ = try s.agent.waitForMetrics { ($0.value("nodeagent_flows_received_total") ?? 0) >= 40 }
        let flows = try s.agent.flows("last=1000")
        XCTAssertEqual(flows.count, 16, "the buffer keeps the newest flow-buffer-size flows")
        XCTAssertEqual(try s.agent.scrape().value("nodeagent_flow_buffer_flows"), 16)

        let url = "http://127.0.0.1:\(port)"
        let inNode = [
            "nsenter", "--net=\(Netns.path(s.agent.nodeNetns))", "curl", "--silent", "--max-time", "5",
            "--write-out", "\n%{http_code} %{content_type}",
        ]
        let metrics = try Shell.run(inNode + ["\(url)/metrics"])
        XCTAssertTrue(metrics.hasSuffix("\n200 text/plain; version=0.0.4; charset=utf-8"), String(metrics.suffix(80)))
        let body = String(metrics[..<metrics.lastIndex(of: "\n")!])
        let scrape = try PrometheusScrape(body)
        XCTAssertEqual(scrape.value("nodeagent_endpoints"), 2)
        XCTAssertTrue(try Shell.run(inNode + ["\(url)/other"]).hasSuffix("\n404 application/json"))
    }

    func testMetricsAddressThatIsNotAnIPIsRefused() throws {
        let topology = try makeTopology()
        let config = try configFile(["metrics-address": "metrics.local:9962"])
        guard AgentProcess.locate("nodeagent") != nil else { throw XCTSkip("nodeagent binary not built") }
        let agent = try AgentProcess(topology: topology, configFile: config, start: false)
        XCTAssertThrowsError(try agent.start(timeout: 5))
        XCTAssertTrue(
            agent.stderrTail().contains("metrics-address: \"metrics.local\" is not an IP address"), agent.stderrTail())
    }
}
