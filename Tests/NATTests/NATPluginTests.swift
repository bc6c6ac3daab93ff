import DatapathCore
import Logging
import XCTest

@testable import NAT

/// The plugin over a datapath of its own: idle without an interface, routes, flush. (Attaching needs an
/// interface, which only the end-to-end tests create, in namespaces of their own.)
final class NATPluginTests: XCTestCase {
    typealias H = NATHarness

    private func startedPlugin(_ h: NATHarness, options: JSON = [:]) throws -> NATPlugin {
        let plugin = NATPlugin()
        try plugin.configure(options)
        try plugin.start(
            PluginContext(
                datapath: h.datapath, logger: Logger(label: "nat-test"), stateDirectory: "/nonexistent",
                restored: false))
        return plugin
    }

    private func call(_ plugin: NATPlugin, _ method: HTTPMethod, query: [String: String] = [:]) throws -> JSON {
        let response = Router(routes: plugin.routes).route(APIRequest(method: method, path: "/v1/nat", query: query))
        XCTAssertEqual(response.status, 200, String(decoding: response.body, as: UTF8.self))
        return try JSON.parse(response.body)
    }

    func testWithoutAnInterfaceItIsIdleSaysSoAndDisablesTranslation() throws {
        let h = try NATHarness()
        let plugin = try startedPlugin(h)
        XCTAssertEqual(plugin.status()["active"], false)
        XCTAssertNotNil(plugin.status()["reason"]?.stringValue)
        let packet = IPv4Packet.tcp(H.pod, H.world, sport: 41000, dport: 443)
        XCTAssertEqual(try h.egress(packet).frame, packet.bytes, "an idle plugin turns translation off")
    }

    func testAnInterfaceThatDoesNotExistFailsTheStartNamingTheOption() throws {
        let h = try NATHarness()
        let plugin = NATPlugin()
        try plugin.configure(["interface": "nat-none0", "cluster-cidrs": ["10.244.0.0/16"]])
        XCTAssertThrowsError(
            try plugin.start(
                PluginContext(datapath: h.datapath, logger: Logger(label: "t"), stateDirectory: "/x", restored: false))
        ) { error in
            XCTAssertEqual((error as? AgentError)?.field, "plugins.nat.interface")
        }
    }

    func testListPagesThroughMappingsAndFlushDeletesBothHalves() throws {
        let h = try NATHarness()
        let plugin = try startedPlugin(h)
        try NATDatapathConfig(datapath: h.datapath).enable(
            address: IPAddress(H.node)!, ports: 32768...65535, ifindex: 0)
        var translated: [UInt16: UInt16] = [:]
        for sport in UInt16(41000)..<41005 {
            let out = try XCTUnwrap(ParsedIPv4(h.egress(.udp(H.pod, H.world, sport: sport, dport: 53)).frame))
            translated[sport] = out.sport
        }

        var seen: [JSON] = []
        var cursor: String?
        repeat {
            var query = ["limit": "2"]
            if let cursor { query["cursor"] = cursor }
            let page = try call(plugin, .GET, query: query)
            XCTAssertEqual(page["total"], 5)
            let mappings = try XCTUnwrap(page["mappings"]?.arrayValue)
            XCTAssertLessThanOrEqual(mappings.count, 2)
            seen += mappings
            cursor = page["next-cursor"]?.stringValue
        } while cursor != nil
        XCTAssertEqual(seen.count, 5)
        for mapping in seen {
            XCTAssertEqual(mapping["protocol"], "UDP")
            XCTAssertEqual(mapping["original"]?["address"]?.stringValue, H.pod)
            XCTAssertEqual(mapping["translated"]?["address"]?.stringValue, H.node)
            XCTAssertEqual(mapping["destination"]?["address"]?.stringValue, H.world)
            XCTAssertEqual(mapping["destination"]?["port"], 53)
            XCTAssertEqual(mapping["complete"], true)
            let original = UInt16(try XCTUnwrap(mapping["original"]?["port"]?.intValue))
            XCTAssertEqual(mapping["translated"]?["port"]?.intValue, Int64(try XCTUnwrap(translated[original])))
            let expires = try XCTUnwrap(mapping["expires-in-seconds"]?.intValue)
            XCTAssertTrue((58...60).contains(expires), "UDP lifetime 60 s, got \(expires)")
        }

        let flushed = try call(plugin, .DELETE)
        XCTAssertEqual(flushed["deleted-entries"], 10)
        XCTAssertEqual(try h.natEntries().count, 0)
        XCTAssertEqual(try call(plugin, .GET)["mappings"], [])
    }

    func testABadCursorIsRejected() throws {
        let h = try NATHarness()
        let plugin = try startedPlugin(h)
        let response = Router(routes: plugin.routes).route(
            APIRequest(method: .GET, path: "/v1/nat", query: ["cursor": "zz"]))
        XCTAssertEqual(response.status, 400)
    }

    func testMetricsReportMappingsPortUseAndAllocationFailures() throws {
        let h = try NATHarness()
        let plugin = try startedPlugin(h)
        try NATDatapathConfig(datapath: h.datapath).enable(
            address: IPAddress(H.node)!, ports: 40000...40001, ifindex: 0)
        for sport in UInt16(41000)...41002 { _ = try h.egress(.tcp(H.pod, H.world, sport: sport, dport: 443)) }
        try plugin.sweep()
        let samples = Dictionary(
            plugin.metrics().map { ($0.name + ($0.labels["destination"].map { "{\($0)}" } ?? ""), $0.value) },
            uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(samples["nodeagent_nat_mappings"], 2)
        XCTAssertEqual(samples["nodeagent_nat_port_use{\(H.world):443/TCP}"], 2)
        XCTAssertEqual(samples["nodeagent_nat_alloc_failures_total"], 1)
    }
}
