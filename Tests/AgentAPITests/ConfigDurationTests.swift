import AgentAPI
import XCTest

final class ConfigDurationTests: XCTestCase {
    func testUnitsAndPlainSeconds() {
        XCTAssertEqual(ConfigDuration.milliseconds("45"), 45_000)
        XCTAssertEqual(ConfigDuration.milliseconds("90s"), 90_000)
        XCTAssertEqual(ConfigDuration.milliseconds("1h30m"), 5_400_000)
        XCTAssertEqual(ConfigDuration.milliseconds("1m30s"), 90_000)
        XCTAssertEqual(ConfigDuration.milliseconds("1500ms"), 1500)
        XCTAssertEqual(ConfigDuration.milliseconds("0s"), 0)
    }

    func testMalformedDurationsAreRefused() {
        // A number without a unit after a unit is ambiguous ("5m30": seconds? minutes?): refused, as Go refuses it.
        for text in ["", "5m30", "5x", "m", "1.5h", "-5s", "1h 30m", "99999999999h", "s5"] {
            XCTAssertNil(ConfigDuration.milliseconds(text), text)
        }
    }

    func testSecondsNamesTheFieldAndTheRange() throws {
        XCTAssertEqual(try ConfigDuration.seconds(.string("2m"), field: "f", range: 1...600), 120)
        XCTAssertEqual(try ConfigDuration.seconds(.int(7), field: "f", range: 1...600), 7)
        XCTAssertThrowsError(try ConfigDuration.seconds(.string("5m30"), field: "x.y", range: 1...600)) {
            XCTAssertEqual(($0 as? AgentError)?.field, "x.y")
        }
        XCTAssertThrowsError(try ConfigDuration.seconds(.string("1500ms"), field: "f", range: 1...600))
        XCTAssertThrowsError(try ConfigDuration.seconds(.string("11m"), field: "f", range: 1...600)) {
            XCTAssertEqual(($0 as? AgentError)?.message, "f: must be between 1 and 600 seconds, got 660")
        }
    }
}

final class ConfigDurationMillisecondsTests: XCTestCase {
    func testMillisecondOptionsAndTheirText() throws {
        XCTAssertEqual(try ConfigDuration.milliseconds(.string("250ms"), field: "f", range: 0...3_600_000), 250)
        XCTAssertEqual(try ConfigDuration.milliseconds(.int(2), field: "f", range: 0...3_600_000), 2000)
        XCTAssertEqual(ConfigDuration.text(milliseconds: 90_000), "90s")
        XCTAssertEqual(ConfigDuration.text(milliseconds: 1500), "1500ms")
        for bad: JSON in ["fast", "1x", "-1s", "2h", -1, 3601, 1.5, true, "", "ms", "5m30"] {
            XCTAssertThrowsError(try ConfigDuration.milliseconds(bad, field: "f", range: 0...3_600_000), "\(bad)") {
                XCTAssertEqual(($0 as? AgentError)?.field, "f")
            }
        }
    }
}
