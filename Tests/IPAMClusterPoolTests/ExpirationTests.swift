import DatapathCore
import XCTest

@testable import IPAMClusterPool

final class ExpirationTests: XCTestCase {
    func testUnclaimedAllocationExpiresAfterTheTimeout() throws {
        let clock = FakeClock()
        let ipam = try readyIPAM(v4Node, directory: try temporaryDirectory(self), clock: clock)
        let allocation = try ipam.allocate(families: [.ipv4], owner: "ns/a", expiring: true)[0]
        XCTAssertEqual(allocation.expiresAtMs, clock.now + 600_000, "the default timeout is Cilium's 10 minutes")
        XCTAssertEqual(allocation.expirationUUID?.count, 36)
        clock.advance(seconds: 599)
        XCTAssertEqual(ipam.expire(), [])
        XCTAssertNotNil(try ipam.allocation(allocation.address))
        clock.advance(seconds: 1)
        XCTAssertEqual(ipam.expire().map(\.address), [allocation.address])
        XCTAssertNil(try ipam.allocation(allocation.address))
    }

    func testAnEndpointWithTheAddressCancelsTheExpiration() throws {
        let clock = FakeClock()
        let ipam = try readyIPAM(
            #"{"pod-cidr-ipv4": "10.0.1.0/24", "expiration-timeout": 5}"#, directory: try temporaryDirectory(self),
            clock: clock)
        let claimed = try ipam.allocate(families: [.ipv4], owner: "ns/a", expiring: true)[0].address
        let unclaimed = try ipam.allocate(families: [.ipv4], owner: "ns/b", expiring: true)[0].address
        ipam.handle(.endpointAdded(id: 3, ifindex: 9, addresses: [claimed.description]))
        let bound = try XCTUnwrap(try ipam.allocation(claimed))
        XCTAssertEqual(bound.endpoint, 3)
        XCTAssertNil(bound.expiresAtMs)
        XCTAssertEqual(bound.owner, "ns/a")
        clock.advance(seconds: 10)
        XCTAssertEqual(ipam.expire().map(\.address), [unclaimed])
        XCTAssertNotNil(try ipam.allocation(claimed))
    }

    func testExpirationResumesWithTheRemainingTimeAfterARestart() throws {
        let directory = try temporaryDirectory(self)
        let clock = FakeClock()
        var ipam: IPAM? = try readyIPAM(v4Node, directory: directory, clock: clock)
        let address = try ipam!.allocate(families: [.ipv4], owner: "ns/a", expiring: true)[0].address
        clock.advance(seconds: 400)
        ipam = nil  // the process dies; nothing is flushed on the way out
        ipam = try readyIPAM(v4Node, directory: directory, clock: clock)
        clock.advance(seconds: 199)
        XCTAssertEqual(ipam!.expire(), [], "200 of 600 seconds remained at the restart")
        clock.advance(seconds: 1)
        XCTAssertEqual(ipam!.expire().map(\.address), [address])
    }

    func testAnExhaustedPoolReclaimsExpiredAllocationsFirst() throws {
        let clock = FakeClock()
        let ipam = try readyIPAM(
            #"{"pod-cidr-ipv4": "10.0.1.0/30", "expiration-timeout": 1}"#, directory: try temporaryDirectory(self),
            clock: clock)
        let first = try ipam.allocate(families: [.ipv4], owner: "a", expiring: true)[0].address
        clock.advance(seconds: 2)
        XCTAssertEqual(try ipam.allocate(families: [.ipv4], owner: "b", expiring: false)[0].address, first)
        XCTAssertEqual(try ipam.allocation(first)?.owner, "b")
    }
}
