import AgentAPI
import XCTest

@testable import Agent

/// The Maglev table builder: an even spread, weights, determinism, and how little moves when a backend goes.
final class MaglevTests: XCTestCase {
    static let size = BackendSelection.defaultMaglevTableSize

    private func backends(_ count: Int, weight: Int = 1) -> [Maglev.Backend] {
        (1...count).map { Maglev.Backend(address: IPAddress("10.0.5.\($0)")!, port: 8080, weight: weight) }
    }

    private func counts(_ table: [Int?]) -> [Int: Int] {
        table.reduce(into: [:]) { counts, index in if let index { counts[index, default: 0] += 1 } }
    }

    func testEqualBackendsShareTheTableWithinOnePosition() {
        for count in [1, 3, 10, 64] {
            let table = Maglev.table(backends(count), size: Self.size)
            XCTAssertFalse(table.contains(nil), "every position names a backend")
            let shares = counts(table)
            XCTAssertEqual(shares.count, count)
            // Each backend takes one position per round until the table is full: floor or ceil of M/N.
            let low = Self.size / count
            for (index, share) in shares {
                XCTAssertTrue((low...low + 1).contains(share), "backend \(index) of \(count) holds \(share)")
            }
        }
    }

    func testWeightsOneToThreeGiveAQuarterAndThreeQuarters() {
        let list = [
            Maglev.Backend(name: "10.0.5.1:8080", weight: 1), Maglev.Backend(name: "10.0.5.2:8080", weight: 3),
        ]
        let shares = counts(Maglev.table(list, size: Self.size))
        XCTAssertEqual(shares[0]! + shares[1]!, Self.size)
        XCTAssertEqual(Double(shares[0]!), Double(Self.size) / 4, accuracy: 3, "weight 1 of 4: \(shares)")
        // Weights in other units give the same table: 100 and 300 are 1 and 3 turns a round.
        let scaled = list.map { Maglev.Backend(name: $0.name, weight: $0.weight * 100) }
        XCTAssertEqual(Maglev.table(scaled, size: Self.size), Maglev.table(list, size: Self.size))
    }

    func testWeightZeroTakesNoPositionAndNoneLeftLeavesTheTableEmpty() {
        var list = backends(4)
        list[2].weight = 0
        let shares = counts(Maglev.table(list, size: 251))
        XCTAssertNil(shares[2])
        XCTAssertEqual(shares.values.reduce(0, +), 251)
        XCTAssertEqual(Maglev.table(backends(3, weight: 0), size: 251), [Int?](repeating: nil, count: 251))
    }

    func testTheTableDependsOnTheBackendsNotOnTheirOrder() {
        let list = backends(10)
        let names = { (table: [Int?], list: [Maglev.Backend]) in table.map { $0.map { list[$0].name } } }
        let reversed = Array(list.reversed())
        XCTAssertEqual(
            names(Maglev.table(list, size: Self.size), list), names(Maglev.table(reversed, size: Self.size), reversed))
    }

    /// The hashes are FNV-1a with a fixed finalizer, not Swift's per-process seeded `Hasher`: every agent, every
    /// run, builds the same table. The values were computed apart from this code (FNV-1a 64 and murmur3's fmix64
    /// written out in Python) and must never change.
    func testPermutationsAreStableAcrossRuns() {
        let first = Maglev.permutation(of: "10.0.5.1:8080", size: Self.size)
        let second = Maglev.permutation(of: "[fd00::1]:8080", size: Self.size)
        XCTAssertEqual([first.offset, first.skip, second.offset, second.skip], Self.pinnedPermutations)
    }

    static let pinnedPermutations = [9193, 2173, 3185, 10383]

    /// Maglev's promise (section 3.4 and figure 12 of the paper): removing a backend frees its own positions,
    /// which go to the others, and disturbs only a few positions of the backends that stay.
    func testRemovingOneOfTenBackendsMovesAlmostOnlyItsOwnPositions() {
        let list = backends(10)
        let before = Maglev.table(list, size: Self.size).map { $0.map { list[$0].name } }
        let remaining = list.filter { $0.name != list[3].name }
        let after = Maglev.table(remaining, size: Self.size).map { $0.map { remaining[$0].name } }
        var moved = 0
        for (old, new) in zip(before, after) where old != list[3].name && old != new { moved += 1 }
        XCTAssertTrue(after.allSatisfy { $0 != list[3].name })
        // 78 of the 14743 positions of the staying backends move with these names; 1% is the bound.
        XCTAssertLessThanOrEqual(moved, Self.size / 100, "\(moved) positions of staying backends moved")
    }

    func testSizesMustBePrime() {
        XCTAssertTrue(Maglev.isPrime(16381))
        XCTAssertTrue(Maglev.isPrime(65537))
        XCTAssertFalse(Maglev.isPrime(16383))
        XCTAssertFalse(Maglev.isPrime(1))
    }
}
