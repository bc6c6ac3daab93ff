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
