import Glibc
import XCTest

@testable import DatapathCore

/// `BitWords` over real array maps: bits across words, with and without a complete word.
final class BitWordsTests: XCTestCase {
    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("creating BPF maps needs root") }
    }

    private func words(_ count: Int) throws -> BPFMap {
        try BPFMap.create(type: .array, name: "na_bw_test", keySize: 4, valueSize: 8, maxEntries: count)
    }

    func testSetAndClearTouchOnlyTheirBits() throws {
        let bits = try BitWords(try words(4))
        XCTAssertNil(bits.completeWord)
        try bits.set([0, 63, 64, 200, 255])
        XCTAssertEqual(try bits.map.lookup(0), 1 | 1 << 63)
        XCTAssertEqual(try bits.map.lookup(1), 1)
        XCTAssertEqual(try bits.map.lookup(3), 1 << 8 | 1 << 63)
        try bits.set([63, 1])
        try bits.clear([0, 200, 130])
        XCTAssertEqual(try bits.read().bits, [1, 63, 64, 255])
        XCTAssertTrue(try bits.read().complete, "a map without a complete word is always complete")
        try bits.rewrite(exactly: [])
        XCTAssertEqual(try bits.read().bits, [])
    }

    func testRewriteLeavesExactlyTheBitsAndMarksTheMapComplete() throws {
        let bits = try BitWords(try words(3), words: 2)
        XCTAssertEqual(bits.completeWord, 2)
        XCTAssertFalse(try bits.read().complete)
        try bits.set([5, 70, 127])
        try bits.rewrite(exactly: [70, 100, 3])
        XCTAssertEqual(try bits.read().bits, [3, 70, 100])
        XCTAssertTrue(try bits.read().complete)
        XCTAssertEqual(try bits.map.lookup(2), 1, "the complete word holds no bits")
        try bits.setComplete(false)
        XCTAssertEqual(try bits.read().complete, false)
        XCTAssertEqual(try bits.read().bits, [3, 70, 100])
    }

    /// A map read in several batches: every word of every batch ends as asked, the complete word untouched but set.
    func testARewriteOverManyBatchesLeavesExactlyItsBits() throws {
        let bits = try BitWords(try words(2001), words: 2000)
        let before = (0..<UInt32(2000)).filter { $0 % 3 == 0 }.map { $0 * 64 + $0 % 64 }
        try bits.set(before)
        var after: [UInt32] = (0..<UInt32(2000)).filter { $0 % 5 == 0 }.map { (word: UInt32) in
            word * 64 + (word * 7) % 64
        }
        after.append(127_999)
        try bits.rewrite(exactly: after)
        XCTAssertEqual(try bits.read().bits, Set(after).sorted())
        XCTAssertTrue(try bits.read().complete)
    }

    func testBitsOfDumpedWordsAreAscending() {
        XCTAssertEqual(BitWords.bits([(key: 2, value: 1 << 1 | 1), (key: 0, value: 1 << 63)]), [63, 128, 129])
        XCTAssertEqual(BitWords.bits([(key: 7, value: 0)]), [])
    }
}
