import DatapathCore
import XCTest

@testable import IPAMClusterPool

final class EndpointTests: XCTestCase {
    func testEndpointAddressesNobodyAllocatedAreClaimedForTheEndpoint() throws {
        let ipam = try readyIPAM(v4Node, directory: try temporaryDirectory(self))
        ipam.handle(.endpointAdded(id: 4, ifindex: 10, addresses: ["10.0.1.2", "10.0.1.1", "192.168.0.9", "fd00::9"]))
        let listed = try ipam.listing().allocations
        XCTAssertEqual(listed.map(\.address), [ip("10.0.1.2")], "the gateway and foreign addresses are not claimed")
        XCTAssertEqual(listed.first?.endpoint, 4)
        XCTAssertNil(listed.first?.owner)
        XCTAssertEqual(try ipam.allocate(families: [.ipv4], owner: "x", expiring: false)[0].address, ip("10.0.1.3"))
    }

    func testRestartReclaimsAddressesOfEndpointsFoundInTheDatapath() throws {
        let directory = try temporaryDirectory(self)
        let clock = FakeClock()
        var ipam: IPAM? = try readyIPAM(v4Node, directory: directory, clock: clock)
        let expiring = try ipam!.allocate(families: [.ipv4], owner: "ns/a", expiring: true)[0].address
        ipam = nil
        // The endpoint was created while the agent was down... or its event was lost in the crash.
        ipam = try readyIPAM(v4Node, directory: directory, clock: clock, endpoints: [9: [expiring, ip("10.0.1.20")]])
        XCTAssertEqual(try ipam!.allocation(expiring)?.endpoint, 9)
        XCTAssertNil(try ipam!.allocation(expiring)?.expiresAtMs)
        XCTAssertEqual(try ipam!.allocation(ip("10.0.1.20"))?.endpoint, 9)
        clock.advance(seconds: 3600)
        XCTAssertEqual(ipam!.expire(), [])
    }

    func testGarbageCollectionReleasesOnlyAllocationsWhoseEndpointIsGone() throws {
        let ipam = try readyIPAM(v4Node, directory: try temporaryDirectory(self))
        let kept = try ipam.allocate(families: [.ipv4], owner: "ns/kept", expiring: false)[0].address
        let gone = try ipam.allocate(families: [.ipv4], owner: "ns/gone", expiring: false)[0].address
        let neverUsed = try ipam.allocate(families: [.ipv4], owner: "ns/pending", expiring: false)[0].address
        ipam.handle(.endpointAdded(id: 1, ifindex: 11, addresses: [kept.description]))
        ipam.handle(.endpointAdded(id: 2, ifindex: 12, addresses: [gone.description]))
        XCTAssertEqual(try ipam.collectGarbage(dryRun: true), [])
        ipam.handle(.endpointRemoved(id: 2, addresses: [gone.description]))
        XCTAssertNotNil(try ipam.allocation(gone), "removing an endpoint does not free its address")

        let dry = try ipam.collectGarbage(dryRun: true)
        XCTAssertEqual(dry.map(\.address), [gone])
        XCTAssertEqual(dry.first?.owner, "ns/gone")
        XCTAssertNotNil(try ipam.allocation(gone), "a dry run releases nothing")
        XCTAssertEqual(try ipam.collectGarbage(dryRun: false).map(\.address), [gone])
        XCTAssertNil(try ipam.allocation(gone))
        XCTAssertNotNil(try ipam.allocation(kept))
        XCTAssertNotNil(try ipam.allocation(neverUsed))
        XCTAssertEqual(try ipam.collectGarbage(dryRun: true), [])
    }

    func testAnEndpointChangingItsAddressOrphansTheOldOne() throws {
        let ipam = try readyIPAM(v4Node, directory: try temporaryDirectory(self))
        ipam.handle(.endpointAdded(id: 5, ifindex: 13, addresses: ["10.0.1.30"]))
        ipam.handle(.endpointAdded(id: 5, ifindex: 13, addresses: ["10.0.1.31"]))
        XCTAssertEqual(try ipam.collectGarbage(dryRun: true).map(\.address), [ip("10.0.1.30")])
    }

    func testOrphansSurviveARestart() throws {
        let directory = try temporaryDirectory(self)
        var ipam: IPAM? = try readyIPAM(v4Node, directory: directory)
        let address = try ipam!.allocate(families: [.ipv4], owner: "ns/a", expiring: false)[0].address
        ipam!.handle(.endpointAdded(id: 6, ifindex: 14, addresses: [address.description]))
        ipam = nil
        // The endpoint's interface vanished while the agent was down: the datapath no longer has it.
        ipam = try readyIPAM(v4Node, directory: directory)
        XCTAssertEqual(try ipam!.collectGarbage(dryRun: true).map(\.address), [address])
    }

    func testEventsArrivingWhileStartingAreAppliedOnceReady() throws {
        let ipam = IPAM(config: try config(v4Node))
        try ipam.load(directory: try temporaryDirectory(self))
        ipam.handle(.endpointAdded(id: 8, ifindex: 15, addresses: ["10.0.1.40"]))
        XCTAssertEqual(ipam.phase, .starting)
        try ipam.syncEndpoints([:])
        XCTAssertEqual(try ipam.allocation(ip("10.0.1.40"))?.endpoint, 8)
        XCTAssertEqual(agentError { try ipam.release(ip("10.0.1.40")) }?.status, 409)
    }
}
