import XCTest

@testable import AgentAPI

final class JSONAccessorTests: XCTestCase {
    func testSubscriptsAndTypedViews() {
        let value: JSON = ["s": "x", "i": 7, "d": 1.5, "b": false, "a": [1, 2], "o": ["k": nil]]
        XCTAssertEqual(value["s"]?.stringValue, "x")
        XCTAssertEqual(value["i"]?.intValue, 7)
        XCTAssertEqual(value["i"]?.doubleValue, 7.0)
        XCTAssertEqual(value["d"]?.doubleValue, 1.5)
        XCTAssertNil(value["d"]?.intValue, "1.5 is not an integer")
        XCTAssertEqual(value["b"]?.boolValue, false)
        XCTAssertEqual(value["a"]?.arrayValue, [1, 2])
        XCTAssertEqual(value["a"]?[1], 2)
        XCTAssertNil(value["a"]?[2])
        XCTAssertEqual(value["o"]?["k"]?.isNull, true)
        XCTAssertNil(value["missing"])
        XCTAssertNil(value["s"]?["x"], "subscript on a non-object is nil")
        XCTAssertNil(value["s"]?.intValue)
        XCTAssertEqual(value["o"]?.objectValue?.count, 1)
        XCTAssertEqual(value["a"]?.typeName, "array")
    }

    func testIntegralDoubleReadsAsInt() {
        XCTAssertEqual(JSON.double(8080).intValue, 8080)
        XCTAssertNil(JSON.double(1e30).intValue)
    }

    func testBuilders() {
        XCTAssertEqual(JSON.object(dropNils: [("a", 1), ("b", nil)]), ["a": 1])
        XCTAssertEqual(JSON(UInt32(7)), .int(7))
        XCTAssertEqual(JSON(UInt64.max), .int(Int64.max))
        XCTAssertEqual(JSON(nil as String?), .null)
        XCTAssertEqual(JSON(["a", "b"]), ["a", "b"])
    }
}
