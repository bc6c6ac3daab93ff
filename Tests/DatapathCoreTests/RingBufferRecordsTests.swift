import XCTest

@testable import DatapathCore

/// The records of one ring-buffer read, kept back to back in one buffer.
final class RingBufferRecordsTests: XCTestCase {
    private func append(_ record: [UInt8], to records: inout RingBufferRecords) {
        record.withUnsafeBytes { records.append($0) }
    }

    func testRecordsComeBackWholeAndInOrder() {
        var records = RingBufferRecords()
        let given: [[UInt8]] = [[1, 2, 3], [], [4], Array(repeating: 9, count: 300)]
        for record in given { append(record, to: &records) }
        XCTAssertEqual(records.count, 4)
        XCTAssertEqual(records.map { Array($0) }, given)
        var seen: [[UInt8]] = []
        records.forEachUnsafeRecord { seen.append(Array($0)) }
        XCTAssertEqual(seen, given)
    }

    func testRemoveAllEmptiesForTheNextRead() {
        var records = RingBufferRecords()
        append([1, 2], to: &records)
        let handedOver = records
        records.removeAll()
        XCTAssertTrue(records.isEmpty)
        append([7], to: &records)
        XCTAssertEqual(records.map { Array($0) }, [[7]])
        XCTAssertEqual(handedOver.map { Array($0) }, [[1, 2]], "records handed over keep their bytes")

        // A burst larger than what is kept between reads still reads back whole.
        for _ in 0..<(RingBufferRecords.keptCapacity / 1000 + 2) {
            append(Array(repeating: 5, count: 1000), to: &records)
        }
        records.removeAll()
        append([8, 9], to: &records)
        XCTAssertEqual(records.map { Array($0) }, [[8, 9]])
    }
}
