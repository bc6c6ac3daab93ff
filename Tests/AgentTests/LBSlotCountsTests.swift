import CNodeABI
import XCTest

@testable import Agent

/// How weights become slots of a bank: a random slot must pick backends in proportion to their weights.
final class LBSlotCountsTests: XCTestCase {
    func testWeightsAreDividedByTheirGreatestCommonDivisor() {
        XCTAssertEqual(LBSlotBank.slotCounts(weights: [1, 3], room: 100), [1, 3])
        XCTAssertEqual(LBSlotBank.slotCounts(weights: [2, 6], room: 100), [1, 3])
        XCTAssertEqual(LBSlotBank.slotCounts(weights: [3, 3, 6], room: 100), [1, 1, 2])
        XCTAssertEqual(LBSlotBank.slotCounts(weights: [7], room: 100), [1])
        XCTAssertEqual(LBSlotBank.slotCounts(weights: [4, 6, 10], room: 10), [2, 3, 5])
        XCTAssertEqual(LBSlotBank.slotCounts(weights: [], room: 100), [])
    }

    func testWeightsBeyondABankAreScaledDownKeepingEveryBackend() {
        // One slot each, and the 97 left shared in proportion, rounded down.
        XCTAssertEqual(LBSlotBank.slotCounts(weights: [1, 65535, 1000], room: 100), [1, 96, 2])

        let bank = Int(NA_LB_MAX_BACKENDS)
        let many = LBSlotBank.slotCounts(weights: Array(repeating: 65535, count: 10) + [1, 2], room: bank)
        XCTAssertEqual(many.count, 12)
        XCTAssertLessThanOrEqual(many.reduce(0, +), bank)
        XCTAssertEqual(many.suffix(2), [1, 1])

        // Room for each backend once and no more: one slot each.
        XCTAssertEqual(LBSlotBank.slotCounts(weights: [5, 9, 1], room: 3), [1, 1, 1])
    }
}
