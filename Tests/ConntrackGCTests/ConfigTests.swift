import ConntrackGC
import DatapathCore
import XCTest

final class ConfigTests: XCTestCase {
    func testDefaultsAreCiliums() throws {
        let config = try ConntrackGCConfig.parse([:])
        XCTAssertEqual(config.tcpEstablished, 8000)
        XCTAssertEqual(config.tcpSYN, 60)
        XCTAssertEqual(config.tcpClosing, 10)
        XCTAssertEqual(config.nonTCP, 60)
        XCTAssertEqual(config.intervalMin, 10)
        XCTAssertEqual(config.intervalMax, 43200)
        XCTAssertEqual(config.intervalInitial, 300)
        XCTAssertEqual(config.pressureThreshold, 0.8)
    }

    func testEveryOptionIsRead() throws {
        let config = try ConntrackGCConfig.parse([
            "tcp-established": 3600, "tcp-syn": "30s", "tcp-closing": 5, "non-tcp": "2m", "interval-min": "5s",
            "interval-max": "1h30m", "interval-initial": 60, "pressure-threshold": 0.5,
        ])
        XCTAssertEqual(config.tcpEstablished, 3600)
        XCTAssertEqual(config.tcpSYN, 30)
        XCTAssertEqual(config.tcpClosing, 5)
        XCTAssertEqual(config.nonTCP, 120)
        XCTAssertEqual(config.intervalMin, 5)
        XCTAssertEqual(config.intervalMax, 5400)
        XCTAssertEqual(config.intervalInitial, 60)
        XCTAssertEqual(config.pressureThreshold, 0.5)
    }

    private func rejection(_ options: JSON, file: StaticString = #filePath, line: UInt = #line) -> AgentError? {
        do {
            _ = try ConntrackGCConfig.parse(options)
            XCTFail("accepted \(options.serialized())", file: file, line: line)
            return nil
        } catch let error as AgentError {
            return error
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
            return nil
        }
    }

    func testBadOptionsAreRejectedNamingTheField() {
        let cases: [(JSON, String)] = [
            (["tcp-establised": 10], "plugins.conntrack-gc.tcp-establised"),
            (["tcp-syn": 0], "plugins.conntrack-gc.tcp-syn"),
            (["non-tcp": -5], "plugins.conntrack-gc.non-tcp"),
            (["tcp-closing": "soon"], "plugins.conntrack-gc.tcp-closing"),
            (["tcp-established": "10x"], "plugins.conntrack-gc.tcp-established"),
            (["tcp-established": 4_294_967_295], "plugins.conntrack-gc.tcp-established"),
            (["interval-max": true], "plugins.conntrack-gc.interval-max"),
            (["pressure-threshold": 0], "plugins.conntrack-gc.pressure-threshold"),
            (["pressure-threshold": 1.5], "plugins.conntrack-gc.pressure-threshold"),
            (["pressure-threshold": "high"], "plugins.conntrack-gc.pressure-threshold"),
            (["interval-min": 600, "interval-max": 60, "interval-initial": 60], "plugins.conntrack-gc.interval-min"),
            (["interval-initial": 5], "plugins.conntrack-gc.interval-initial"),
            (["interval-initial": "13h"], "plugins.conntrack-gc.interval-initial"),
        ]
        for (options, field) in cases {
            let error = rejection(options)
            XCTAssertEqual(error?.status, 400, options.serialized())
            XCTAssertEqual(error?.field, field, options.serialized())
            XCTAssertTrue(error?.message.hasPrefix(field + ": ") ?? false, error?.message ?? "")
        }
    }

    func testPluginConfigureRejectsUnknownOptionsByName() {
        let plugin = ConntrackGCPlugin()
        XCTAssertThrowsError(try plugin.configure(["interval": 5])) { error in
            XCTAssertEqual((error as? AgentError)?.field, "plugins.conntrack-gc.interval")
        }
        XCTAssertNoThrow(try plugin.configure(["interval-initial": "10m"]))
        XCTAssertEqual(plugin.intervalSeconds, 600)
    }
}
