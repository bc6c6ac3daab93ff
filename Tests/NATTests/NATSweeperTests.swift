import DatapathCore
import XCTest

@testable import NAT

/// The GC of na_nat on mappings the datapath created: both halves go together, never one alone.
final class NATSweeperTests: XCTestCase {
    typealias H = NATHarness

    private func sweeper(_ h: NATHarness) throws -> NATSweeper {
        try NATSweeper(nat: h.datapath.map("na_nat"), conntrack: h.datapath.map("na_ct"))
    }

    @discardableResult
    private func open(
        _ h: NATHarness, sport: UInt16, to destination: String = H.world, dport: UInt16 = 443,
        source: String = H.pod
    ) throws -> IPv4Packet {
        let syn = IPv4Packet.tcp(source, destination, sport: sport, dport: dport)
        XCTAssertEqual(try h.egress(syn).verdict, TC_ACT_OK)
        return syn
    }

    func testExpiredMappingsLoseBothHalvesAndLiveOnesStay() throws {
        let h = try NATHarness()
        try open(h, sport: 41000)
        let now = MonotonicClock.seconds()

        let live = try sweeper(h).sweep(now: now)
        XCTAssertEqual(live.mappings, 1)
        XCTAssertEqual(live.deletedEntries, 0)
        XCTAssertEqual(try h.natEntries().count, 2)

        // A SYN's lifetime is 60 s: a minute and a bit later it has passed.
        let later = try sweeper(h).sweep(now: now + 62)
        XCTAssertEqual(later.expired, 1)
        XCTAssertEqual(later.deletedEntries, 2)
        XCTAssertEqual(later.mappings, 0)
        XCTAssertEqual(try h.natEntries().count, 0)
    }

    func testTrackedMappingsGoWithTheirConntrackEntry() throws {
        let h = try NATHarness()
        let kept = IPv4Packet.tcp(H.pod, H.world, sport: 41000, dport: 443)
        let orphan = IPv4Packet.tcp(H.pod, H.world, sport: 41001, dport: 443)
        let stale = IPv4Packet.tcp(H.pod, H.world, sport: 41002, dport: 443)
        try h.track(NATHarness.forwardKey(kept))
        try h.track(NATHarness.forwardKey(orphan))
        try h.track(NATHarness.forwardKey(stale))
        for packet in [kept, orphan, stale] { _ = try h.egress(packet) }
        XCTAssertTrue(try h.conntrack.delete(NATHarness.forwardKey(orphan)))
        var expired = try XCTUnwrap(try h.conntrack.lookup(NATHarness.forwardKey(stale)))
        expired.lifetime = MonotonicClock.seconds() - 1
        try h.conntrack.update(NATHarness.forwardKey(stale), expired)

        let stats = try sweeper(h).sweep(now: MonotonicClock.seconds())
        XCTAssertEqual(stats.untracked, 2)
        XCTAssertEqual(stats.deletedEntries, 4)
        XCTAssertEqual(stats.mappings, 1)
        let left = try h.natEntries()
        XCTAssertEqual(left.count, 2)
        XCTAssertNotNil(try h.nat.lookup(NATHarness.forwardKey(kept)))
    }

    func testConntrackIsWalkedInBatchesForManyTrackedMappings() throws {
        let h = try NATHarness()
        var packets: [IPv4Packet] = []
        for sport in UInt16(41000)..<41020 {
            let packet = IPv4Packet.tcp(H.pod, H.world, sport: sport, dport: 443)
            try h.track(NATHarness.forwardKey(packet))
            _ = try h.egress(packet)
            packets.append(packet)
        }
        for packet in packets[..<5] { XCTAssertTrue(try h.conntrack.delete(NATHarness.forwardKey(packet))) }
        var sweeper = try sweeper(h)
        sweeper.lookupLimit = 0
        let stats = try sweeper.sweep(now: MonotonicClock.seconds())
        XCTAssertEqual(stats.untracked, 5)
        XCTAssertEqual(stats.mappings, 15)
        XCTAssertEqual(try h.natEntries().count, 30)
    }

    func testLoneHalvesAreDeletedOnceOlderThanTheGrace() throws {
        let h = try NATHarness()
        let a = try open(h, sport: 41000)
        let b = try open(h, sport: 41001)
        let keyA = NATHarness.forwardKey(a)
        let forwardB = try XCTUnwrap(try h.nat.lookup(NATHarness.forwardKey(b)))
        XCTAssertTrue(try h.nat.delete(keyA))  // a's reverse half is alone now
        XCTAssertTrue(try h.nat.delete(NATHalves.reverseKey(forward: NATHarness.forwardKey(b), entry: forwardB)))
        let created = forwardB.created

        let young = try sweeper(h).sweep(now: created + 1)
        XCTAssertEqual(young.lone, 0, "a mapping is written half by half: give it time")
        XCTAssertEqual(try h.natEntries().count, 2)

        let old = try sweeper(h).sweep(now: created + 3)
        XCTAssertEqual(old.lone, 2)
        XCTAssertEqual(try h.natEntries().count, 0)
    }

    func testPortUseIsCountedPerDestination() throws {
        let h = try NATHarness()
        for sport in UInt16(41000)..<41003 { try open(h, sport: sport) }
        try open(h, sport: 42000, dport: 80)
        let stats = try sweeper(h).sweep(now: MonotonicClock.seconds())
        XCTAssertEqual(
            stats.topDestinations,
            [
                DestinationUse(destination: "\(H.world):443/TCP", mappings: 3),
                DestinationUse(destination: "\(H.world):80/TCP", mappings: 1),
            ])
    }

    func testPurgeBySourceTakesOnlyThatPodsMappings() throws {
        let h = try NATHarness()
        try open(h, sport: 41000)
        try open(h, sport: 41001, source: "10.244.1.6")
        let deleted = try sweeper(h).purge(sources: [IPAddress(H.pod)!])
        XCTAssertEqual(deleted, 2)
        let left = try h.natEntries()
        XCTAssertEqual(left.count, 2)
        XCTAssertNil(try h.nat.lookup(NATHarness.forwardKey(.tcp(H.pod, H.world, sport: 41000, dport: 443))))

        XCTAssertEqual(try sweeper(h).purge(sources: nil), 2)
        XCTAssertEqual(try h.natEntries().count, 0)
    }
}
