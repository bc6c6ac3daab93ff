import DatapathCore
import XCTest

@testable import IPAMClusterPool

final class IPAMConfigTests: XCTestCase {
    func testNodeIndexPicksTheNthSubnetOfThePoolInAddressOrder() throws {
        let first = try config(#"{"cluster-pool-ipv4-cidr": ["10.0.0.0/16"], "node-index": 0}"#)
        XCTAssertEqual(first.ipv4?.podCIDR.description, "10.0.0.0/24", "Cilium's default mask size is 24")
        let fifth = try config(#"{"cluster-pool-ipv4-cidr": ["10.0.0.0/16"], "node-index": 5}"#)
        XCTAssertEqual(fifth.ipv4?.podCIDR.description, "10.0.5.0/24")
        XCTAssertEqual(fifth.ipv4?.cidrs.map(\.description), ["10.0.0.0/16"])
        let small = try config(
            #"{"cluster-pool-ipv4-cidr": "10.8.0.0/16", "cluster-pool-ipv4-mask-size": 26, "node-index": 6}"#)
        XCTAssertEqual(small.ipv4?.podCIDR.description, "10.8.1.128/26")
        XCTAssertNil(small.ipv6)
    }

    func testNodeIndexContinuesIntoTheNextPoolWhenTheFirstIsUsedUp() throws {
        let text = #"{"cluster-pool-ipv4-cidr": ["10.0.0.0/23", "192.168.0.0/22"], "node-index": "#
        XCTAssertEqual(try config(text + "1}").ipv4?.podCIDR.description, "10.0.1.0/24")
        XCTAssertEqual(try config(text + "2}").ipv4?.podCIDR.description, "192.168.0.0/24")
        XCTAssertEqual(try config(text + "5}").ipv4?.podCIDR.description, "192.168.3.0/24")
        let beyond = try XCTUnwrap(agentError { try config(text + "6}") })
        XCTAssertEqual(beyond.field, "plugins.ipam.node-index")
        XCTAssertTrue(beyond.message.contains("6 is beyond the 6 /24 subnets"), beyond.message)
    }

    func testIPv6DerivationCarriesAcrossBytes() throws {
        let dual = try config(
            #"{"cluster-pool-ipv4-cidr": ["10.0.0.0/8"], "cluster-pool-ipv6-cidr": ["fd00::/104"], "node-index": 300}"#)
        XCTAssertEqual(dual.ipv4?.podCIDR.description, "10.1.44.0/24")
        XCTAssertEqual(dual.ipv6?.podCIDR.description, "fd00::1:2c00/120", "300 = 0x12c, shifted by 8 host bits")
        XCTAssertEqual(dual.families, [.ipv4, .ipv6])
        XCTAssertEqual(NodeCIDR.adding(0xFF, shiftedLeftBy: 4, to: [0, 0x0F, 0xF0]), [0, 0x1F, 0xE0])
        XCTAssertNil(NodeCIDR.adding(1, shiftedLeftBy: 24, to: [0xFF, 0, 0, 0]))
    }

    func testExplicitPodCIDRMustLieInsideThePool() throws {
        let explicit = try config(#"{"cluster-pool-ipv4-cidr": ["10.0.0.0/16"], "pod-cidr-ipv4": "10.0.9.0/24"}"#)
        XCTAssertEqual(explicit.ipv4?.podCIDR.description, "10.0.9.0/24")
        let outside = try XCTUnwrap(
            agentError { try config(#"{"cluster-pool-ipv4-cidr": ["10.0.0.0/16"], "pod-cidr-ipv4": "10.1.0.0/24"}"#) })
        XCTAssertEqual(outside.field, "plugins.ipam.pod-cidr-ipv4")
        let alone = try config(#"{"pod-cidr-ipv6": "fd00:1::/112"}"#)
        XCTAssertEqual(alone.ipv6?.cidrs.map(\.description), ["fd00:1::/112"], "without a pool, cidrs is the pod CIDR")
        XCTAssertNil(alone.ipv4)
    }

    func testDefaultsAndIdleConfig() throws {
        let empty = try config("{}")
        XCTAssertFalse(empty.isConfigured)
        XCTAssertEqual(empty.expirationTimeout, 600)
        XCTAssertEqual(try config(#"{"pod-cidr-ipv4": "10.0.1.0/24", "expiration-timeout": 30}"#).expirationTimeout, 30)
        XCTAssertEqual(
            try config(#"{"pod-cidr-ipv4": "10.0.1.0/24", "expiration-timeout": "10m"}"#).expirationTimeout, 600)
    }

    func testBadOptionsAreRejectedNamingTheField() throws {
        let cases: [(String, String, String)] = [
            (#"{"cluster-pool-ipv4-cidrs": ["10.0.0.0/8"]}"#, "plugins.ipam.cluster-pool-ipv4-cidrs", "unknown option"),
            (#"{"cluster-pool-ipv4-cidr": ["10.0.0.0/8"]}"#, "plugins.ipam.node-index", "required"),
            (
                #"{"cluster-pool-ipv4-cidr": ["10.0.0.1/8"], "node-index": 0}"#,
                "plugins.ipam.cluster-pool-ipv4-cidr[0]",
                "host bits set; did you mean 10.0.0.0/8?"
            ),
            (
                #"{"cluster-pool-ipv4-cidr": ["10.0.0.0/8", "10.2.0.0/16"], "node-index": 0}"#,
                "plugins.ipam.cluster-pool-ipv4-cidr[1]", "overlaps 10.0.0.0/8"
            ),
            (
                #"{"cluster-pool-ipv4-cidr": ["fd00::/104"], "node-index": 0}"#,
                "plugins.ipam.cluster-pool-ipv4-cidr[0]",
                "not an IPv4 CIDR"
            ),
            (
                #"{"cluster-pool-ipv4-cidr": ["10.0.0.0/8"], "cluster-pool-ipv4-mask-size": 31, "node-index": 0}"#,
                "plugins.ipam.cluster-pool-ipv4-mask-size", "between 1 and 30"
            ),
            (
                #"{"cluster-pool-ipv4-cidr": ["10.0.0.0/24"], "cluster-pool-ipv4-mask-size": 16, "node-index": 0}"#,
                "plugins.ipam.cluster-pool-ipv4-mask-size", "shorter than the prefix of pool CIDR 10.0.0.0/24"
            ),
            (#"{"cluster-pool-ipv6-mask-size": 112}"#, "plugins.ipam.cluster-pool-ipv6-mask-size", "has no effect"),
            (#"{"pod-cidr-ipv4": "10.0.0.0"}"#, "plugins.ipam.pod-cidr-ipv4", "expected a CIDR"),
            (#"{"pod-cidr-ipv6": "fd00::/64"}"#, "plugins.ipam.pod-cidr-ipv6", "between 65 and 126"),
            (#"{"node-index": 3}"#, "plugins.ipam.node-index", "has no effect"),
            (#"{"node-index": -1, "cluster-pool-ipv4-cidr": "10.0.0.0/8"}"#, "plugins.ipam.node-index", "0 or more"),
            (
                #"{"pod-cidr-ipv4": "10.0.1.0/24", "expiration-timeout": 0}"#, "plugins.ipam.expiration-timeout",
                "between 1 and 86400"
            ),
        ]
        for (text, field, fragment) in cases {
            let error = try XCTUnwrap(agentError { try config(text) }, text)
            XCTAssertEqual(error.field, field, text)
            XCTAssertEqual(error.status, 400, text)
            XCTAssertTrue(error.message.contains(fragment), "\(text): \(error.message)")
        }
    }

    func testPluginConfigureRejectsUnknownKeysBeforeChangingAnything() throws {
        let plugin = IPAMClusterPoolPlugin()
        XCTAssertThrowsError(try plugin.configure(["pod-cidr-ipv4": "10.0.1.0/24", "bogus": 1])) { error in
            XCTAssertEqual((error as? AgentError)?.field, "plugins.ipam.bogus")
        }
        XCTAssertEqual(plugin.status()["state"], "idle")
        try plugin.configure(["pod-cidr-ipv4": "10.0.1.0/24"])
        XCTAssertEqual(plugin.status()["state"], "starting")
    }
}
