import ConntrackGC
import XCTest

final class GCIntervalTests: XCTestCase {
    private func interval(_ initial: Int = 300) -> GCInterval {
        GCInterval(initial: initial, minimum: 10, maximum: 43200)
    }

    func testHighDeleteRatioShortensByThatRatio() {
        var pace = interval()
        pace.adapt(deleted: 500, maxEntries: 1000)  // 50 %
        XCTAssertEqual(pace.seconds, 150)
        pace.adapt(deleted: 300, maxEntries: 1000)  // 30 %: 150 × 0.7
        XCTAssertEqual(pace.seconds, 105)
    }

    func testShrinkIsCappedAtNinetyPercentAndFloored() {
        var pace = interval()
        pace.adapt(deleted: 1000, maxEntries: 1000)  // 100 % counts as 90 %
        XCTAssertEqual(pace.seconds, 30)
        pace.adapt(deleted: 1000, maxEntries: 1000)  // 3 s < minimum
        XCTAssertEqual(pace.seconds, 10)
    }

    func testLowDeleteRatioGrowsByHalfUpToTheMaximum() {
        var pace = interval()
        pace.adapt(deleted: 10, maxEntries: 1000)  // 1 %
        XCTAssertEqual(pace.seconds, 450)
        for _ in 0..<20 { pace.adapt(deleted: 1, maxEntries: 1000) }
        XCTAssertEqual(pace.seconds, 43200)
    }

    func testMiddleRatiosAndEmptySweepsKeepThePace() {
        var pace = interval()
        pace.adapt(deleted: 50, maxEntries: 1000)  // exactly 5 %
        pace.adapt(deleted: 250, maxEntries: 1000)  // exactly 25 %
        pace.adapt(deleted: 120, maxEntries: 1000)
        pace.adapt(deleted: 0, maxEntries: 1000)
        XCTAssertEqual(pace.seconds, 300)
    }

    func testInitialIsClampedIntoBounds() {
        XCTAssertEqual(GCInterval(initial: 1, minimum: 10, maximum: 100).seconds, 10)
        XCTAssertEqual(GCInterval(initial: 1000, minimum: 10, maximum: 100).seconds, 100)
    }
}
