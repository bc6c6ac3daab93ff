import DatapathCore
import XCTest

@testable import IPAMClusterPool

final class AllocationTests: XCTestCase {
    func testFirstAllocationIsTheFirstAddressAfterTheGateway() throws {
        let ipam = try readyIPAM(v4Node, directory: try temporaryDirectory(self))
        let first = try ipam.allocate(families: [.ipv4], owner: "web/a", expiring: false)
        XCTAssertEqual(first.map(\.address), [ip("10.0.1.2")])
        XCTAssertEqual(first.first?.owner, "web/a")
        XCTAssertNil(first.first?.expiresAtMs)
        XCTAssertEqual(try ipam.allocation(ip("10.0.1.2"))?.owner, "web/a")
    }

    func testRoundRobinDoesNotReuseAJustReleasedAddress() throws {
        let ipam = try readyIPAM(#"{"pod-cidr-ipv4": "10.0.1.0/29"}"#, directory: try temporaryDirectory(self))
        let a = try ipam.allocate(families: [.ipv4], owner: "a", expiring: false)[0].address
        let b = try ipam.allocate(families: [.ipv4], owner: "b", expiring: false)[0].address
        XCTAssertEqual([a, b], [ip("10.0.1.2"), ip("10.0.1.3")])
        XCTAssertEqual(try ipam.release(a)?.owner, "a")
        XCTAssertEqual(try ipam.allocate(families: [.ipv4], owner: "c", expiring: false)[0].address, ip("10.0.1.4"))
        // .5 and .6 next, then the search wraps around to the released .2, skipping the gateway and network.
        XCTAssertEqual(try ipam.allocate(families: [.ipv4], owner: "d", expiring: false)[0].address, ip("10.0.1.5"))
        XCTAssertEqual(try ipam.allocate(families: [.ipv4], owner: "e", expiring: false)[0].address, ip("10.0.1.6"))
        XCTAssertEqual(try ipam.allocate(families: [.ipv4], owner: "f", expiring: false)[0].address, ip("10.0.1.2"))
    }

    func testExhaustionIs507WithTheCIDRAndCount() throws {
        let ipam = try readyIPAM(v4Node, directory: try temporaryDirectory(self))
        var seen = Set<IPAddress>()
        for index in 0..<253 {
            let address = try ipam.allocate(families: [.ipv4], owner: "ns/pod-\(index)", expiring: false)[0].address
            XCTAssertTrue(seen.insert(address).inserted, "\(address) handed out twice")
        }
        XCTAssertFalse(
            seen.contains(ip("10.0.1.0")) || seen.contains(ip("10.0.1.1")) || seen.contains(ip("10.0.1.255")))
        let error = try XCTUnwrap(agentError { try ipam.allocate(families: [.ipv4], owner: "late", expiring: false) })
        XCTAssertEqual(error.status, 507)
        XCTAssertEqual(error.code, .capacity)
        XCTAssertEqual(error.message, "pod CIDR 10.0.1.0/24 is exhausted (253 addresses in use)")
        XCTAssertEqual(try ipam.listing().families.first?.free, 0)
        _ = try ipam.release(ip("10.0.1.77"))
        XCTAssertEqual(try ipam.allocate(families: [.ipv4], owner: "late", expiring: false)[0].address, ip("10.0.1.77"))
    }

    func testDualStackAllocatesBothOrNeither() throws {
        let ipam = try readyIPAM(
            #"{"pod-cidr-ipv4": "10.0.1.0/24", "pod-cidr-ipv6": "fd00:1::/126"}"#,
            directory: try temporaryDirectory(self))
        let both = try ipam.allocate(families: [.ipv4, .ipv6], owner: "ns/a", expiring: false)
        XCTAssertEqual(both.map(\.address), [ip("10.0.1.2"), ip("fd00:1::2")])
        _ = try ipam.allocate(families: [.ipv4, .ipv6], owner: "ns/b", expiring: false)
        // The /126 has two usable addresses; the IPv4 half of a third request must not stay allocated.
        let error = try XCTUnwrap(
            agentError { try ipam.allocate(families: [.ipv4, .ipv6], owner: "ns/c", expiring: false) })
        XCTAssertEqual(error.message, "pod CIDR fd00:1::/126 is exhausted (2 addresses in use)")
        XCTAssertEqual(try ipam.listing().allocations.count, 4)
        XCTAssertNil(try ipam.allocation(ip("10.0.1.4")))
    }

    func testUnconfiguredFamilyIsABadRequest() throws {
        let ipam = try readyIPAM(v4Node, directory: try temporaryDirectory(self))
        let error = try XCTUnwrap(agentError { try ipam.allocate(families: [.ipv6], owner: nil, expiring: false) })
        XCTAssertEqual(error.field, "family")
        XCTAssertTrue(error.message.contains("ipv6 is not configured"), error.message)
    }

    func testClaimingRefusesReservedOutsideAndTakenAddresses() throws {
        let ipam = try readyIPAM(v4Node, directory: try temporaryDirectory(self))
        let (claimed, created) = try ipam.claim(ip("10.0.1.50"), owner: "ns/a", expiring: false)
        XCTAssertTrue(created)
        XCTAssertEqual(claimed.address, ip("10.0.1.50"))
        let again = try ipam.claim(ip("10.0.1.50"), owner: "ns/a", expiring: false)
        XCTAssertFalse(again.created, "the same owner's retry gets its allocation back")
        let taken = try XCTUnwrap(agentError { try ipam.claim(ip("10.0.1.50"), owner: "ns/b", expiring: false) })
        XCTAssertEqual(taken.status, 409)
        XCTAssertEqual(taken.message, "10.0.1.50 is already allocated to ns/a")
        let gateway = try XCTUnwrap(agentError { try ipam.claim(ip("10.0.1.1"), owner: "x", expiring: false) })
        XCTAssertEqual(gateway.status, 400)
        XCTAssertEqual(gateway.message, "ip: 10.0.1.1 is reserved: it is the gateway of pod CIDR 10.0.1.0/24")
        let broadcast = try XCTUnwrap(agentError { try ipam.claim(ip("10.0.1.255"), owner: "x", expiring: false) })
        XCTAssertTrue(broadcast.message.contains("the broadcast address"), broadcast.message)
        let outside = try XCTUnwrap(agentError { try ipam.claim(ip("10.0.2.5"), owner: "x", expiring: false) })
        XCTAssertEqual(outside.status, 400)
        XCTAssertEqual(outside.message, "ip: 10.0.2.5 is outside the pod CIDR 10.0.1.0/24")
        // Allocation skips the claimed address.
        _ = try ipam.claim(ip("10.0.1.2"), owner: "ns/c", expiring: false)
        XCTAssertEqual(try ipam.allocate(families: [.ipv4], owner: "d", expiring: false)[0].address, ip("10.0.1.3"))
    }

    func testReleaseIsIdempotentAndRefusesAddressesInUse() throws {
        let ipam = try readyIPAM(v4Node, directory: try temporaryDirectory(self))
        let address = try ipam.allocate(families: [.ipv4], owner: "ns/a", expiring: false)[0].address
        XCTAssertEqual(try ipam.release(address)?.owner, "ns/a")
        XCTAssertNil(try ipam.release(address))
        XCTAssertNil(try ipam.release(ip("10.9.9.9")))
        XCTAssertEqual(agentError { try ipam.release(ip("10.0.1.1")) }?.status, 400)

        let used = try ipam.allocate(families: [.ipv4], owner: "ns/b", expiring: false)[0].address
        ipam.handle(.endpointAdded(id: 7, ifindex: 40, addresses: [used.description]))
        let busy = try XCTUnwrap(agentError { try ipam.release(used) })
        XCTAssertEqual(busy.status, 409)
        XCTAssertTrue(busy.message.contains("in use by endpoint 7"), busy.message)
        ipam.handle(.endpointRemoved(id: 7, addresses: [used.description]))
        XCTAssertEqual(try ipam.release(used)?.endpoint, 7)
    }

    func testUnconfiguredServiceAnswers503SayingWhatToSet() throws {
        let ipam = IPAM(config: try config("{}"))
        let error = try XCTUnwrap(agentError { try ipam.listing() })
        XCTAssertEqual(error.status, 503)
        XCTAssertTrue(error.message.hasPrefix("IPAM is not configured: set plugins.ipam.cluster-pool-ipv4-cidr"))
        XCTAssertEqual(ipam.status()["state"], "idle")
        XCTAssertEqual(ipam.metrics(), [])
    }

    func testNothingIsServedBeforeTheEndpointsAreSynced() throws {
        let ipam = IPAM(config: try config(v4Node))
        try ipam.load(directory: try temporaryDirectory(self))
        XCTAssertEqual(agentError { try ipam.allocate(families: [.ipv4], owner: nil, expiring: false) }?.status, 503)
        XCTAssertEqual(ipam.expire(), [])
    }

    func testStatusAndMetricsCountPerFamily() throws {
        let ipam = try readyIPAM(
            #"{"pod-cidr-ipv4": "10.0.1.0/24", "pod-cidr-ipv6": "fd00:1::/120"}"#,
            directory: try temporaryDirectory(self))
        _ = try ipam.allocate(families: [.ipv4, .ipv6], owner: "a", expiring: false)
        _ = try ipam.allocate(families: [.ipv4], owner: "b", expiring: false)
        let status = ipam.status()
        XCTAssertEqual(status["state"], "ready")
        XCTAssertEqual(status["ipv4"]?["allocated"], 2)
        XCTAssertEqual(status["ipv4"]?["free"], 251)
        XCTAssertEqual(status["ipv6"]?["free"], 253)
        let samples = Dictionary(
            uniqueKeysWithValues: ipam.metrics().map { ("\($0.labels["family"]!)/\($0.labels["state"]!)", $0.value) })
        XCTAssertEqual(samples, ["ipv4/allocated": 2, "ipv4/free": 251, "ipv6/allocated": 1, "ipv6/free": 253])
    }
}
