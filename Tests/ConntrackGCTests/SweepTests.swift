import ConntrackGC
import DatapathCore
import XCTest

/// Every sweep test runs twice: with the sweep in the kernel (what the agent runs) and in user space (its fallback
/// when a kernel cannot load the sweep program), which must decide alike.
final class SweepTests: XCTestCase {
    private func sweeper(_ datapath: Datapath, endpoints: Bool = true, inKernel: Bool) throws -> ConntrackSweeper {
        let sweeper = try ConntrackSweeper(
            conntrack: datapath.map("na_ct"), endpoints: endpoints ? datapath.map("na_endpoints") : nil,
            inKernel: inKernel)
        XCTAssertEqual(sweeper.kernelSweepProblem, inKernel ? nil : "disabled", "the in-kernel sweep loads here")
        return sweeper
    }

    /// Expired entries and entries of endpoints gone from na_endpoints go, IPv4 and IPv6 alike; live entries of
    /// live endpoints stay, including one that expires exactly now (the datapath still treats it as live).
    func testSweepDeletesExpiredAndOrphanedEntriesOnly() throws {
        for inKernel in [true, false] { try sweepDeletesExpiredAndOrphanedEntriesOnly(inKernel: inKernel) }
    }

    private func sweepDeletesExpiredAndOrphanedEntriesOnly(inKernel: Bool) throws {
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

        let stats = try sweeper(datapath, inKernel: inKernel).sweep(now: now)

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
        for inKernel in [true, false] {
            let datapath = try loadDatapath()
            let now = MonotonicClock.seconds()
            try datapath.put(
                Flow(source: "10.0.0.9", destination: "10.0.1.1"), ctValue(expiresIn: -5, endpoint: 9, now: now))
            let stats = try sweeper(datapath, inKernel: inKernel).sweep(now: now)
            XCTAssertEqual([stats.expired, stats.orphaned, stats.deleted, stats.remaining], [1, 0, 1, 0])
            XCTAssertEqual(try datapath.remainingFlows(), [])
        }
    }

    /// Without na_endpoints the sweeper only expires: it cannot tell an orphan from a live entry.
    func testWithoutEndpointMapOnlyExpiredGo() throws {
        for inKernel in [true, false] {
            let datapath = try loadDatapath()
            let now = MonotonicClock.seconds()
            let live = Flow(source: "10.0.0.9", destination: "10.0.1.1")
            try datapath.put(live, ctValue(expiresIn: 50, endpoint: 9, now: now))
            try datapath.put(
                Flow(source: "10.0.0.9", destination: "10.0.1.2"), ctValue(expiresIn: -50, endpoint: 9, now: now))
            let stats = try sweeper(datapath, endpoints: false, inKernel: inKernel).sweep(now: now)
            XCTAssertEqual(stats.deleted, 1)
            XCTAssertEqual(try datapath.remainingFlows(), [live.label])
        }
    }

    /// Endpoint ids beyond the in-kernel sweep's owners bitmap (65,536 ids): their live entries are confirmed in
    /// user space and stay while the endpoint exists; a gone one's go.
    func testEndpointIDsBeyondTheOwnersBitmapAreDecidedAlike() throws {
        let datapath = try loadDatapath()
        try datapath.addEndpoint(id: 70_000, ifindex: 70)
        let now = MonotonicClock.seconds()
        let kept = Flow(source: "10.0.0.7", destination: "10.0.1.1")
        try datapath.put(kept, ctValue(expiresIn: 60, endpoint: 70_000, now: now))
        try datapath.put(
            Flow(source: "10.0.0.8", destination: "10.0.1.1"), ctValue(expiresIn: 60, endpoint: 80_000, now: now))
        let stats = try sweeper(datapath, inKernel: true).sweep(now: now)
        XCTAssertEqual([stats.scanned, stats.expired, stats.orphaned], [2, 0, 1])
        XCTAssertEqual(try datapath.remainingFlows(), [kept.label])
    }

    /// More entries than one lookup batch (4096): every batch is read and its expired entries deleted.
    func testSweepSpansBatches() throws {
        for inKernel in [true, false] { try sweepSpansBatches(inKernel: inKernel) }
    }

    private func sweepSpansBatches(inKernel: Bool) throws {
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
        let stats = try sweeper(datapath, inKernel: inKernel).sweep(now: now)
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
