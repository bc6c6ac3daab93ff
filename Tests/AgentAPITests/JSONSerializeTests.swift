import XCTest

@testable import AgentAPI

final class JSONSerializeTests: XCTestCase {
    func testCompactWithSortedKeys() {
        let value: JSON = ["zeta": 1, "alpha": [true, nil, "x"], "mid": ["b": 2, "a": 1]]
        XCTAssertEqual(value.serialized(), #"{"alpha":[true,null,"x"],"mid":{"a":1,"b":2},"zeta":1}"#)
    }

    func testPrettyIsIndentedAndReadsBack() throws {
        let value: JSON = ["a": [1, 2], "b": ["c": "d"]]
        let pretty = value.serialized(pretty: true)
        XCTAssertTrue(pretty.contains("\n  \"a\": ["), pretty)
        XCTAssertEqual(try JSON.parse(pretty), value)
    }

    func testDoublesUseShortestRoundTrippingForm() throws {
        XCTAssertEqual(JSON.array([0.1, 3.0, 1e300, -2.5e-7]).serialized(), "[0.1,3.0,1e300,-2.5e-7]")
        let awkward = JSON.array([.double(0.1 + 0.2), .double(1.0 / 3.0), .double(Double.leastNonzeroMagnitude)])
        XCTAssertEqual(try JSON.parse(awkward.serialized()), awkward)
    }

    func testNonFiniteDoublesBecomeNull() {
        XCTAssertEqual(JSON.array([.double(.nan), .double(.infinity)]).serialized(), "[null,null]")
    }

    func testStringsAreEscapedAndRoundTrip() throws {
        let value: JSON = ["k\"ey": "quote \" backslash \\ tab \t newline \n é 日本 🙂 ctl \u{1}"]
        let text = value.serialized()
        XCTAssertTrue(text.contains(#"\"ey"#), text)
        XCTAssertTrue(text.contains(#"\u0001"#), text)
        XCTAssertEqual(try JSON.parse(text), value)
    }

    func testStringWithNulIsWrittenEscaped() {
        XCTAssertEqual(JSON.string("a\u{0}b").serialized(), #""a\u0000b""#)
    }

    func testRoundTripOfAComplexDocument() throws {
        let value: JSON = [
            "id": 12, "interface-name": "lxc1", "addressing": ["ipv4": "10.0.1.5", "ipv6": nil],
            "labels": ["k8s:app=frontend"], "ratio": 0.75, "big": .int(Int64.max), "small": .int(Int64.min),
            "nested": [[[], [:]], ["": ""]],
        ]
        XCTAssertEqual(try JSON.parse(value.serialized()), value)
        XCTAssertEqual(try JSON.parse(value.serialized(pretty: true)), value)
        XCTAssertEqual(try JSON.parse(value.serializedBytes()), value)
    }

    func testDeepValueBuiltInSwiftSerializes() throws {
        var value: JSON = 1
        for _ in 0..<1000 { value = .array([value]) }
        let text = value.serialized()
        XCTAssertEqual(text, String(repeating: "[", count: 1000) + "1" + String(repeating: "]", count: 1000))
    }
}
