import DatapathCore
import XCTest

final class CRC32Tests: XCTestCase {
    func testStandardCheckValueAndSlices() {
        // The CRC-32/ISO-HDLC check value of "123456789".
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum(Array("x123456789".utf8).dropFirst()), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum([UInt8]()), 0)
    }
}
