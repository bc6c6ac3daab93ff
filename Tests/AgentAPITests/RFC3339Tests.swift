import XCTest

@testable import AgentAPI

final class RFC3339Tests: XCTestCase {
    func testFormatsUTCWithNanoseconds() {
        XCTAssertEqual(RFC3339.format(nanoseconds: 0), "1970-01-01T00:00:00.000000000Z")
        XCTAssertEqual(RFC3339.format(nanoseconds: 1_795_852_862_123_456_789), "2026-11-28T08:01:02.123456789Z")
        // A leap day, and an instant before the epoch (floor division, not truncation).
        XCTAssertEqual(RFC3339.format(nanoseconds: 951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z")
        XCTAssertEqual(RFC3339.format(nanoseconds: -1), "1969-12-31T23:59:59.999999999Z")
    }

    func testParsesWhatItFormats() {
        for nanos: Int64 in [0, 1, -1, 951_782_400_000_000_001, 1_795_852_862_123_456_789, 4_102_444_799_999_999_999] {
            XCTAssertEqual(RFC3339.parse(RFC3339.format(nanoseconds: nanos)), nanos, "\(nanos)")
        }
    }

    func testParsesOffsetsFractionsAndVariants() {
        let base: Int64 = 1_795_852_862 * 1_000_000_000  // 2026-11-28T08:01:02Z
        XCTAssertEqual(RFC3339.parse("2026-11-28T08:01:02Z"), base)
        XCTAssertEqual(RFC3339.parse("2026-11-28t08:01:02z"), base)
        XCTAssertEqual(RFC3339.parse("2026-11-28 08:01:02Z"), base)
        XCTAssertEqual(RFC3339.parse("2026-11-28T09:31:02+01:30"), base)
        XCTAssertEqual(RFC3339.parse("2026-11-28T03:01:02-05:00"), base)
        XCTAssertEqual(RFC3339.parse("2026-11-28T08:01:02.5Z"), base + 500_000_000)
        XCTAssertEqual(RFC3339.parse("2026-11-28T08:01:02.123Z"), base + 123_000_000)
        XCTAssertEqual(RFC3339.parse("2026-11-28T08:01:02.1234567891234Z"), base + 123_456_789, "beyond ns truncated")
    }

    func testRejectsMalformedAndImpossibleTimes() {
        for text in [
            "", "yesterday", "2026-11-28", "2026-11-28T08:01Z", "2026-11-28T08:01:02", "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-11-28T24:00:00Z", "2026-11-28T08:60:00Z",
            "2026-11-28T08:01:02.Z", "2026-11-28T08:01:02+1:00", "2026-11-28T08:01:02Zjunk", "1795852862",
        ] {
            XCTAssertNil(RFC3339.parse(text), text)
        }
        XCTAssertNotNil(RFC3339.parse("2024-02-29T00:00:00Z"), "2024 is a leap year")
        XCTAssertNil(RFC3339.parse("2100-02-29T00:00:00Z"), "2100 is not")
    }
}
