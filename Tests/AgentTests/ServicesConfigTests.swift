import DatapathCore
import XCTest

@testable import Agent

/// The config file's `services` section: defaults, every key, and each refusal as a 400 naming the field.
final class ServicesConfigTests: XCTestCase {
    private func config(_ text: String) throws -> AgentConfig {
        var config = AgentConfig()
        try config.apply(file: try JSON.parse(text))
        return config
    }

    func testWithoutTheSectionTheLoadBalancerRunsAtTheAgentsOwnMount() throws {
        let services = try config("{}").services
        XCTAssertEqual(services, ServicesConfig())
        XCTAssertTrue(services.enabled)
        XCTAssertEqual(services.cgroupRoot, "/run/nodeagent/cgroupv2")
        XCTAssertEqual(services.backendSelection, .random)
        XCTAssertEqual(services.maglevTableSize, 16381)
        XCTAssertEqual(try config(#"{"services": {}}"#).services, ServicesConfig())
    }

    func testEveryKeyIsRead() throws {
        let services = try config(
            #"{"services": {"enabled": false, "cgroup-root": "/sys/fs/cgroup/unified/lb", "#
                + #""backend-selection": "maglev", "maglev-table-size": 251}}"#
        ).services
        XCTAssertFalse(services.enabled)
        XCTAssertEqual(services.cgroupRoot, "/sys/fs/cgroup/unified/lb")
        XCTAssertEqual(services.backendSelection, .maglev)
        XCTAssertEqual(services.maglevTableSize, 251)
        XCTAssertEqual(
            services.json,
            [
                "enabled": false, "cgroup-root": "/sys/fs/cgroup/unified/lb", "backend-selection": "maglev",
                "maglev-table-size": 251,
            ])
        for size in ServicesConfig.maglevTableSizes {
            XCTAssertEqual(try config(#"{"services": {"maglev-table-size": \#(size)}}"#).services.maglevTableSize, size)
        }
    }

    /// `devices` when given (an empty list: none), else the NAT plugin's interface, else none.
    func testDevicesDefaultToTheNATPluginsInterface() throws {
        XCTAssertEqual(try config("{}").services.effectiveDevices(plugins: [:]), [])
        let nat = try config(#"{"plugins": {"nat": {"interface": "ens5"}}}"#)
        XCTAssertNil(nat.services.devices)
        XCTAssertEqual(nat.services.effectiveDevices(plugins: nat.plugins), ["ens5"])
        let both = try config(
            #"{"plugins": {"nat": {"interface": "ens5"}}, "services": {"devices": ["eth1", "eth2"]}}"#)
        XCTAssertEqual(both.services.effectiveDevices(plugins: both.plugins), ["eth1", "eth2"])
        let none = try config(#"{"plugins": {"nat": {"interface": "ens5"}}, "services": {"devices": []}}"#)
        XCTAssertEqual(none.services.effectiveDevices(plugins: none.plugins), [])
    }

    func testBadValuesAreRefusedNamingTheField() {
        let cases: [(String, String, String)] = [
            (#"{"services": true}"#, "services", "expected an object"),
            (#"{"services": {"enable": true}}"#, "services.enable", "unknown services option"),
            (#"{"services": {"enabled": "yes"}}"#, "services.enabled", "expected a boolean"),
            (#"{"services": {"cgroup-root": "run/x"}}"#, "services.cgroup-root", "absolute path"),
            (#"{"services": {"cgroup-root": 3}}"#, "services.cgroup-root", "expected a string"),
            (#"{"services": {"backend-selection": "hash"}}"#, "services.backend-selection", "random, maglev"),
            (#"{"services": {"maglev-table-size": 16384}}"#, "services.maglev-table-size", "251, 509"),
            (#"{"services": {"maglev-table-size": 262139}}"#, "services.maglev-table-size", "out of range"),
            (#"{"services": {"devices": "eth0"}}"#, "services.devices", "expected an array"),
            (#"{"services": {"devices": ["eth0", 3]}}"#, "services.devices[1]", "expected a string"),
            (#"{"services": {"devices": ["a/b"]}}"#, "services.devices[0]", "not an interface name"),
            (#"{"services": {"devices": [""]}}"#, "services.devices[0]", "not an interface name"),
            (#"{"services": {"devices": ["sixteen-chars-xx"]}}"#, "services.devices[0]", "not an interface name"),
        ]
        for (text, field, message) in cases {
            XCTAssertThrowsError(try config(text), text) { error in
                let error = error as? AgentError
                XCTAssertEqual(error?.status, 400, text)
                XCTAssertEqual(error?.field, field, text)
                XCTAssertTrue(error?.message.contains(message) == true, "\(text): \(error?.message ?? "")")
            }
        }
    }

    func testTheFeatureFollowsEnabled() throws {
        XCTAssertTrue(try config("{}").preflightFeatures(linked: []).contains(.services))
        XCTAssertFalse(
            try config(#"{"services": {"enabled": false}}"#).preflightFeatures(linked: []).contains(.services))
    }
}
