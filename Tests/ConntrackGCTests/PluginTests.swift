import ConntrackGC
import DatapathCore
import Foundation
import Logging
import XCTest

final class PluginTests: XCTestCase {
    private func config(_ datapath: Datapath) throws -> na_config {
        let map: TypedMap<UInt32, na_config> = try datapath.typedMap("na_config")
        return try XCTUnwrap(try map.lookup(0))
    }

    func testStartWritesLifetimesAndKeepsTheOtherConfigFields() throws {
        let datapath = try loadDatapath()
        var existing = na_config()
        existing.ct_lifetime_tcp = 8000
        existing.flags = UInt32(NA_CFG_EVENTS_DROPPED | NA_CFG_EVENTS_ALLOWED)
        existing.allowed_sample_rate = 7
        try datapath.typedMap("na_config", UInt32.self, na_config.self).update(0, existing)

        let plugin = try startedPlugin(
            on: datapath,
            options: [
                "tcp-established": "1h", "tcp-syn": 20, "tcp-closing": 5, "non-tcp": 45, "pressure-threshold": 0.9,
            ])
        defer { plugin.stop() }
        let written = try config(datapath)
        XCTAssertEqual(
            [
                written.ct_lifetime_tcp, written.ct_lifetime_syn, written.ct_lifetime_closing,
                written.ct_lifetime_nontcp,
            ],
            [3600, 20, 5, 45])
        XCTAssertEqual(written.flags, UInt32(NA_CFG_EVENTS_DROPPED | NA_CFG_EVENTS_ALLOWED))
        XCTAssertEqual(written.allowed_sample_rate, 7)
        XCTAssertEqual(written.ct_pressure_pct, 90)
    }

    /// All zero reads as "defaults with drop events" in the datapath: writing lifetimes must not turn events off.
    func testStartOnAnUnwrittenConfigKeepsDropEvents() throws {
        let datapath = try loadDatapath()
        let plugin = try startedPlugin(on: datapath)
        defer { plugin.stop() }
        let written = try config(datapath)
        XCTAssertEqual(written.ct_lifetime_tcp, 8000)
        XCTAssertEqual(written.flags, UInt32(NA_CFG_EVENTS_DROPPED))
        XCTAssertEqual(written.allowed_sample_rate, 1)
    }

    func testEndpointRemovalDeletesOnlyThatEndpointsEntries() throws {
        let datapath = try loadDatapath()
        try datapath.addEndpoint(id: 3, ifindex: 30)
        try datapath.addEndpoint(id: 4, ifindex: 40)
        let plugin = try startedPlugin(on: datapath)
        defer { plugin.stop() }
        let survivors = [
            (Flow(source: "10.0.0.4", destination: "10.0.1.1"), ctValue(expiresIn: 100, endpoint: 4)),
            (Flow(source: "fd00::4", destination: "fd00::1"), ctValue(expiresIn: -100, endpoint: 4)),
            (Flow(source: "10.0.0.9", destination: "10.0.1.1"), ctValue(expiresIn: 100, endpoint: 9)),
        ]
        for (flow, value) in survivors { try datapath.put(flow, value) }
        try datapath.put(Flow(source: "10.0.0.3", destination: "10.0.1.1"), ctValue(expiresIn: 100, endpoint: 3))
        try datapath.put(
            Flow(source: "fd00::3", destination: "fd00::1", proto: 17), ctValue(expiresIn: 100, endpoint: 3))

        plugin.handle(.endpointAdded(id: 3, ifindex: 30, addresses: []))
        XCTAssertEqual(try datapath.conntrack().entries().count, 5)
        try datapath.removeEndpoint(ifindex: 30)
        plugin.handle(.endpointRemoved(id: 3, addresses: ["10.0.0.3", "fd00::3"]))
        XCTAssertEqual(try datapath.remainingFlows(), Set(survivors.map(\.0.label)))
    }

    func testSweepUpdatesStatusMetricsAndInterval() throws {
        let datapath = try loadDatapath(conntrackEntries: 4096)
        try datapath.addEndpoint(id: 1, ifindex: 10)
        let plugin = try startedPlugin(on: datapath)
        defer { plugin.stop() }
        XCTAssertEqual(plugin.status()["runs"], 0)
        XCTAssertEqual(plugin.status()["last-sweep"], .null)

        let now = MonotonicClock.seconds()
        var keys: [[UInt8]] = []
        var values: [[UInt8]] = []
        for index in 0..<2500 {
            let flow = Flow(source: "10.1.\(index / 256).\(index % 256)", destination: "10.2.0.1")
            keys.append(bytesOf(flow.key))
            values.append(bytesOf(ctValue(expiresIn: index < 2048 ? -1 : 100, endpoint: 1, now: now)))
        }
        try datapath.map("na_ct").updateBatch(keys: keys, values: values)

        let stats = try plugin.sweep()
        XCTAssertEqual([stats.scanned, stats.deleted, stats.remaining], [2500, 2048, 452])
        // 2048 / 4096 = 50 % deleted: 300 s × 0.5.
        XCTAssertEqual(plugin.intervalSeconds, 150)

        let status = plugin.status()
        XCTAssertEqual(status["runs"], 1)
        XCTAssertEqual(status["scanned"], 2500)
        XCTAssertEqual(status["deleted"], 2048)
        XCTAssertEqual(status["entries"], 452)
        XCTAssertEqual(status["max-entries"], 4096)
        XCTAssertEqual(status["interval-seconds"], 150)
        XCTAssertEqual(status["estimated-entries"], 452)
        XCTAssertGreaterThan(status["duration-ms"]?.doubleValue ?? 0, 0)
        XCTAssertNotNil(status["last-sweep"]?.stringValue.flatMap { try? Date($0, strategy: .iso8601) })

        let metrics = Dictionary(uniqueKeysWithValues: plugin.metrics().map { ($0.name, $0) })
        XCTAssertEqual(metrics["nodeagent_ct_entries"]?.value, 452)
        XCTAssertEqual(metrics["nodeagent_ct_gc_runs_total"]?.value, 1)
        XCTAssertEqual(metrics["nodeagent_ct_gc_runs_total"]?.type, "counter")
        XCTAssertEqual(metrics["nodeagent_ct_gc_deleted"]?.value, 2048)
        XCTAssertEqual(metrics["nodeagent_ct_gc_interval_seconds"]?.value, 150)
        let durationMS = try XCTUnwrap(status["duration-ms"]?.doubleValue)
        XCTAssertEqual(
            try XCTUnwrap(metrics["nodeagent_ct_gc_duration_seconds"]?.value), durationMS / 1000, accuracy: 1e-9)
        XCTAssertEqual(plugin.periodicJobs.map(\.name), ["sweep", "pressure"])
        XCTAssertEqual(plugin.periodicJobs[0].interval(), .seconds(150))
    }

    /// The probe sweeps first to set its baseline, then only when entries left + creations since reach the
    /// threshold, and not sooner than interval-min after the last sweep.
    func testPressureProbeSweepsEarlyWhenTheTableFills() throws {
        let datapath = try loadDatapath(conntrackEntries: 1000)
        try datapath.addEndpoint(id: 1, ifindex: 10)
        let plugin = try startedPlugin(on: datapath, options: ["pressure-threshold": 0.5, "interval-min": 1])
        defer { plugin.stop() }
        XCTAssertTrue(plugin.checkPressure())
        XCTAssertEqual(plugin.status()["runs"], 1)
        XCTAssertFalse(plugin.checkPressure())
        XCTAssertEqual(plugin.estimatedEntries(), 0)

        for index in 0..<100 {
            try datapath.put(
                Flow(source: "10.0.0.1", destination: "10.0.1.1", sourcePort: UInt16(index)),
                ctValue(expiresIn: -1, endpoint: 1))
        }
        // The datapath's counter says 499 flows were created since: just under 50 % of 1000.
        let counter = try datapath.map("na_ct_created")
        var slots = [UInt8](repeating: 0, count: counter.valueCount * 8)
        func setCreated(_ total: UInt64) throws {
            withUnsafeBytes(of: total.littleEndian) { slots.replaceSubrange(0..<8, with: $0) }
            try counter.update(key: [0, 0, 0, 0], value: slots)
        }
        try setCreated(499)
        Thread.sleep(forTimeInterval: 1.1)
        XCTAssertEqual(plugin.estimatedEntries(), 499)
        XCTAssertFalse(plugin.checkPressure())

        try setCreated(500)
        XCTAssertTrue(plugin.checkPressure())
        XCTAssertEqual(plugin.status()["runs"], 2)
        XCTAssertEqual(plugin.status()["deleted"], 100)
        XCTAssertEqual(try datapath.conntrack().entries().count, 0)
        XCTAssertEqual(plugin.estimatedEntries(), 0)

        // Still over the threshold right after a sweep (a table full of live flows): no sweep within interval-min.
        try setCreated(1200)
        XCTAssertFalse(plugin.checkPressure())
    }

    /// Driven by the core's registry as the agent drives it: config section, owners, routes, health detail.
    func testRunsUnderThePluginRegistry() throws {
        let datapath = try loadDatapath()
        let registry = PluginRegistry(plugins: [ConntrackGCPlugin()], logger: Logger(label: "registry-test"))
        XCTAssertThrowsError(try registry.configure(["conntrack-gc": ["tcp-synn": 30]])) { error in
            XCTAssertEqual((error as? AgentError)?.field, "plugins.conntrack-gc.tcp-synn")
        }
        try registry.configure(["conntrack-gc": ["enabled": true, "tcp-syn": 30]])
        let directory = NSTemporaryDirectory() + "ctgc-registry-\(getpid())-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        registry.startAll { plugin in
            PluginContext(
                datapath: datapath, logger: Logger(label: plugin.name), stateDirectory: "\(directory)/\(plugin.name)",
                restored: false)
        }
        defer { registry.stopAll() }
        XCTAssertEqual(datapath.owner(ofMap: "na_ct"), "conntrack-gc")
        XCTAssertEqual(datapath.owner(ofMap: "na_ct_created"), "conntrack-gc")
        XCTAssertEqual(try config(datapath).ct_lifetime_syn, 30)
        XCTAssertTrue(registry.routes.contains { $0.method == .GET && $0.pattern == "/v1/ct" })
        XCTAssertTrue(registry.routes.contains { $0.method == .DELETE && $0.pattern == "/v1/ct" })
        let health = try XCTUnwrap(registry.statuses()[0])
        XCTAssertEqual(health["name"], "conntrack-gc")
        XCTAssertEqual(health["state"], "running")
        XCTAssertEqual(health["detail"]?["interval-seconds"], 300)
        XCTAssertEqual(health["detail"]?["max-entries"], 4096)
    }

    func testStoppedPluginDoesNothing() throws {
        let datapath = try loadDatapath()
        let plugin = try startedPlugin(on: datapath)
        try datapath.put(Flow(source: "10.0.0.3", destination: "10.0.1.1"), ctValue(expiresIn: -1, endpoint: 3))
        plugin.stop()
        XCTAssertFalse(plugin.checkPressure())
        plugin.handle(.endpointRemoved(id: 3, addresses: []))
        XCTAssertThrowsError(try plugin.sweep())
        XCTAssertEqual(try datapath.conntrack().entries().count, 1)
    }
}
