import DatapathCore
import XCTest

@testable import NAT

/// `plugins.nat` options: defaults, accepted spellings, and rejections that name the field.
final class NATOptionsTests: XCTestCase {
    private func rejection(_ options: JSON) -> AgentError? {
        do {
            _ = try NATOptions.parse(options)
            return nil
        } catch {
            return error as? AgentError
        }
    }

    func testDefaultsAreIdleWithTheWholeUpperPortRange() throws {
        let options = try NATOptions.parse([:])
        XCTAssertNil(options.interface)
        XCTAssertEqual(options.portRange, 32768...65535)
        XCTAssertNil(options.maxEntries)
        XCTAssertEqual(options.gcInterval, .seconds(30))
    }

    func testAFullConfiguration() throws {
        let options = try NATOptions.parse([
            "interface": "eth0", "address": "192.0.2.10", "port-range": "40000-40099",
            "cluster-cidrs": ["10.244.0.0/16", "10.96.0.0/12"], "max-entries": 65536, "gc-interval": "1m30s",
        ])
        XCTAssertEqual(options.interface, "eth0")
        XCTAssertEqual(options.address, IPAddress("192.0.2.10"))
        XCTAssertEqual(options.portRange, 40000...40099)
        XCTAssertEqual(options.clusterCIDRs.map(\.description), ["10.244.0.0/16", "10.96.0.0/12"])
        XCTAssertEqual(options.maxEntries, 65536)
        XCTAssertEqual(options.gcInterval, .seconds(90))
    }

    func testUnknownKeysAreRejectedByName() {
        let error = rejection(["interface": "eth0", "cluster-cidrs": ["10.0.0.0/8"], "masquerade-all": true])
        XCTAssertEqual(error?.field, "plugins.nat.masquerade-all")
        XCTAssertEqual(error?.code, .invalidField)
    }

    func testBadValuesNameTheirField() {
        let cases: [(JSON, String)] = [
            (["port-range": "70000-80000"], "plugins.nat.port-range"),
            (["port-range": "5000-4000"], "plugins.nat.port-range"),
            (["port-range": 40000], "plugins.nat.port-range"),
            (["address": "fd00::1"], "plugins.nat.address"),
            (["address": "node"], "plugins.nat.address"),
            (["cluster-cidrs": ["10.244.0.0/16", "nope"]], "plugins.nat.cluster-cidrs[1]"),
            (["cluster-cidrs": "10.244.0.0/16"], "plugins.nat.cluster-cidrs"),
            (["max-entries": 1], "plugins.nat.max-entries"),
            (["gc-interval": "soon"], "plugins.nat.gc-interval"),
            (["gc-interval": 0], "plugins.nat.gc-interval"),
            (["interface": "an-interface-name-too-long"], "plugins.nat.interface"),
            (["interface": "eth0"], "plugins.nat.cluster-cidrs"),
        ]
        for (options, field) in cases {
            XCTAssertEqual(rejection(options)?.field, field, "\(options.serialized())")
        }
    }

    func testASinglePortIsARange() throws {
        XCTAssertEqual(try NATOptions.parse(["port-range": "40000"]).portRange, 40000...40000)
    }

    func testMaxEntriesSizeTheNATMap() throws {
        let plugin = NATPlugin()
        XCTAssertEqual(plugin.mapSizes, [:])
        try plugin.configure(["max-entries": 4096])
        XCTAssertEqual(plugin.mapSizes, ["na_nat": 4096])
    }
}
