import ConntrackGC
import DatapathCore
import XCTest

final class SweepTests: XCTestCase {
    /// Expired entries and entries of endpoints gone from na_endpoints go, IPv4 and IPv6 alike; live entries of
    /// live endpoints stay, including one that expires exactly now (the datapath still treats it as live).
    func testSweepDeletesExpiredAndOrphanedEntriesOnly() throws {
        let datapath = try loadDatapath()
        try datapath.addEndpoint(id: 3, ifindex: 30)
        try datapath.addEndpoint(id: 4, ifindex: 40)
        let now = MonotonicClock.seconds()
        let keep = [
            (Flow(source: "10.0.0.3", destination: "10.0.1.1"), ctValue(expiresIn: 7999, endpoint: 3, now: now)),
            (
                Flow(source: "fd00::3", destination: "fd00::1:1", proto: 17),
                ctValue(expiresIn: 30, endpoint: 3, now: now)
            ),
            (
                Flow(source: "10.0.0.4", destination: "10.0.1.2", egress: false),
                ctValue(expiresIn: 0, endpoint: 4, now: now)
            ),
            (Flow(source: "fd00::4", destination: "fd00::1:2"), ctValue(expiresIn: 100, endpoint: 4, now: now)),
        ]
        let expired = [
            (
                Flow(source: "10.0.0.3", destination: "10.0.1.9", sourcePort: 1),
                ctValue(expiresIn: -1, endpoint: 3, now: now)
            ),
            (
                Flow(source: "fd00::3", destination: "fd00::1:9", proto: 17),
                ctValue(expiresIn: -500, endpoint: 3, now: now)
            ),
            (
                Flow(source: "10.0.0.4", destination: "10.0.1.9", proto: 1),
                ctValue(expiresIn: -60, endpoint: 4, now: now)
            ),
        ]
        let orphaned = [
            (Flow(source: "10.0.0.9", destination: "10.0.1.1"), ctValue(expiresIn: 5000, endpoint: 9, now: now)),
            (Flow(source: "fd00::9", destination: "fd00::1:1"), ctValue(expiresIn: 5000, endpoint: 9, now: now)),
        ]
        for (flow, value) in keep + expired + orphaned { try datapath.put(flow, value) }

        let sweeper = try ConntrackSweeper(conntrack: datapath.map("na_ct"), endpoints: datapath.map("na_endpoints"))
        let stats = try sweeper.sweep(now: now)

        XCTAssertEqual(try datapath.remainingFlows(), Set(keep.map(\.0.label)))
        XCTAssertEqual(stats.scanned, 9)
        XCTAssertEqual(stats.expired, 3)
        XCTAssertEqual(stats.orphaned, 2)
        XCTAssertEqual(stats.deleted, 5)
        XCTAssertEqual(stats.remaining, 4)
        XCTAssertGreaterThan(stats.duration, .zero)
    }

    /// An expired entry of a gone endpoint counts once, as expired.
    func testExpiredOrphanCountsOnce() throws {
        let datapath = try loadDatapath()
        let now = MonotonicClock.seconds()
        try datapath.put(
            Flow(source: "10.0.0.9", destination: "10.0.1.1"), ctValue(expiresIn: -5, endpoint: 9, now: now))
        let sweeper = try ConntrackSweeper(conntrack: datapath.map("na_ct"), endpoints: datapath.map("na_endpoints"))
        let stats = try sweeper.sweep(now: now)
        XCTAssertEqual([stats.expired, stats.orphaned, stats.deleted, stats.remaining], [1, 0, 1, 0])
        XCTAssertEqual(try datapath.remainingFlows(), [])
    }

    /// Without na_endpoints the sweeper only expires: it cannot tell an orphan from a live entry.
    func testWithoutEndpointMapOnlyExpiredGo() throws {
        let datapath = try loadDatapath()
        let now = MonotonicClock.seconds()
        let live = Flow(source: "10.0.0.9", destination: "10.0.1.1")
        try datapath.put(live, ctValue(expiresIn: 50, endpoint: 9, now: now))
        try datapath.put(
            Flow(source: "10.0.0.9", destination: "10.0.1.2"), ctValue(expiresIn: -50, endpoint: 9, now: now))
        let stats = try ConntrackSweeper(conntrack: datapath.map("na_ct"), endpoints: nil).sweep(now: now)
        XCTAssertEqual(stats.deleted, 1)
        XCTAssertEqual(try datapath.remainingFlows(), [live.label])
    }

    /// More entries than one lookup batch (4096): every batch is read and its expired entries deleted.
    func testSweepSpansBatches() throws {
        let datapath = try loadDatapath(conntrackEntries: 16384)
        try datapath.addEndpoint(id: 1, ifindex: 10)
        let now = MonotonicClock.seconds()
        var keys: [[UInt8]] = []
        var values: [[UInt8]] = []
        for index in 0..<10_000 {
            let flow = Flow(
                source: "10.1.\(index / 256).\(index % 256)", destination: "10.2.0.1", sourcePort: UInt16(index))
            keys.append(bytesOf(flow.key))
            values.append(bytesOf(ctValue(expiresIn: index % 3 == 0 ? -1 : 60, endpoint: 1, now: now)))
        }
        let map = try datapath.map("na_ct")
        XCTAssertEqual(try map.updateBatch(keys: keys, values: values), 10_000)
        let stats = try ConntrackSweeper(conntrack: map, endpoints: datapath.map("na_endpoints")).sweep(now: now)
        XCTAssertEqual(stats.scanned, 10_000)
        XCTAssertEqual(stats.deleted, 3334)
        XCTAssertEqual(try map.count(), 10_000 - 3334)
        XCTAssertTrue(try datapath.conntrack().entries().allSatisfy { $0.value.lifetime >= now })
    }

    /// Purging one endpoint deletes its entries only, whatever their lifetime.
    func testPurgeEndpointDeletesOnlyItsEntries() throws {
        let datapath = try loadDatapath()
        let now = MonotonicClock.seconds()
        let other = [
            Flow(source: "10.0.0.4", destination: "10.0.1.1"), Flow(source: "fd00::4", destination: "fd00::1"),
        ]
        for flow in other { try datapath.put(flow, ctValue(expiresIn: -10, endpoint: 4, now: now)) }
        try datapath.put(
            Flow(source: "10.0.0.3", destination: "10.0.1.1"), ctValue(expiresIn: 100, endpoint: 3, now: now))
        try datapath.put(
            Flow(source: "fd00::3", destination: "fd00::1"), ctValue(expiresIn: 100, endpoint: 3, now: now))
        let sweeper = try ConntrackSweeper(conntrack: datapath.map("na_ct"), endpoints: datapath.map("na_endpoints"))
        let stats = try sweeper.purge(endpoint: 3)
        XCTAssertEqual(stats.deleted, 2)
        XCTAssertEqual(stats.scanned, 4)
        XCTAssertEqual(try datapath.remainingFlows(), Set(other.map(\.label)))
    }

    func testSweeperRejectsAMapOfAnotherLayout() throws {
        let datapath = try loadDatapath()
        XCTAssertThrowsError(try ConntrackSweeper(conntrack: datapath.map("na_ipcache"), endpoints: nil))
    }
}
