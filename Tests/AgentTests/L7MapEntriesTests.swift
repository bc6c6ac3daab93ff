import DatapathCore
import Policy
import XCTest

@testable import Agent

/// How compiled HTTP rules become map entries, how DFA ranges are handed out, and how ring-buffer records are told
/// apart by kind: the parts of the L7 datapath that need no kernel.
final class L7MapEntriesTests: XCTestCase {
    private func literal(_ text: String) -> ByteDFA { ByteDFA(literal: Array(text.utf8)) }

    /// Walks the written states as the kernel does (`na_l7_dfa_accepts`).
    private func accepts(_ states: [na_l7_dfa_state], base: Int, start: UInt16, _ text: String) -> Bool {
        var state = Int(start)
        for byte in text.utf8 {
            let next = withUnsafeBytes(of: states[state - base].next) {
                $0.load(fromByteOffset: Int(byte) * 2, as: UInt16.self)
            }
            state = Int(next)
            if state == 0 { return false }
        }
        return states[state - base].flags & UInt16(NA_L7_DFA_ACCEPT) != 0
    }

    func testDFAsAreRelocatedIntoTheirRangeAndWalkAsBefore() throws {
        let policy = HTTPPortPolicy(
            port: 80,
            rules: [
                HTTPRuleProgram(ruleID: 7, method: literal("GET"), path: literal("/a")),
                HTTPRuleProgram(
                    ruleID: 8, host: literal("example.com"), headers: [.init(name: "X-Token", value: "s3cret")]),
            ], peers: [0: .rules(0b10), 12: .unrestricted])
        let base = 100
        let entries = try L7PortEntries(policy, base: UInt16(base))
        XCTAssertEqual(entries.states.count, L7PortEntries.stateCount(policy))
        XCTAssertEqual(entries.states.count, 3 + 1 + 2 + 1 + 11 + 1)
        let get = entries.rules[0]
        XCTAssertEqual(get.rule_id, 7)
        XCTAssertEqual(get.method_dfa, 100)
        XCTAssertEqual(get.host_dfa, 0)
        XCTAssertTrue(accepts(entries.states, base: base, start: get.method_dfa, "GET"))
        XCTAssertFalse(accepts(entries.states, base: base, start: get.method_dfa, "GETS"))
        XCTAssertTrue(accepts(entries.states, base: base, start: get.path_dfa, "/a"))
        XCTAssertFalse(accepts(entries.states, base: base, start: get.path_dfa, "/"))
        let host = entries.rules[1]
        XCTAssertTrue(accepts(entries.states, base: base, start: host.host_dfa, "example.com"))
        XCTAssertEqual(host.header_count, 1)
        XCTAssertEqual(host.headers.0.name_len, 7)
        XCTAssertEqual(Array(tupleBytes(host.headers.0.name).prefix(7)), Array("x-token".utf8))
        XCTAssertEqual(host.headers.0.flags, UInt8(NA_L7_HDR_VALUE))
        XCTAssertEqual(Array(tupleBytes(host.headers.0.value).prefix(6)), Array("s3cret".utf8))
        XCTAssertEqual(entries.peers.map(\.identity), [0, 12])
        XCTAssertEqual(entries.peers[0].value.rules, 0b10)
        XCTAssertEqual(entries.peers[1].value.flags, UInt32(NA_L7_PEER_UNRESTRICTED))
    }

    func testRulesBeyondWhatTheMapsHoldAreRefused() {
        let tooMany = HTTPPortPolicy(
            port: 80, rules: (0..<65).map { HTTPRuleProgram(ruleID: UInt32($0)) }, peers: [:])
        XCTAssertThrowsError(try L7PortEntries(tooMany, base: 1))
        let headers = (0..<5).map { HTTPHeaderRequirement(name: "h\($0)") }
        XCTAssertThrowsError(
            try L7PortEntries(
                HTTPPortPolicy(port: 80, rules: [.init(ruleID: 1, headers: headers)], peers: [:]), base: 1))
        let long = HTTPHeaderRequirement(name: "x", value: String(repeating: "v", count: 129))
        XCTAssertThrowsError(
            try L7PortEntries(HTTPPortPolicy(port: 80, rules: [.init(ruleID: 1, headers: [long])], peers: [:]), base: 1)
        )
    }

    func testStateRangesAreFirstFitAndNeverHandOutTheDeadState() {
        var ranges = L7StateRanges(capacity: 100)
        XCTAssertEqual(ranges.allocate(10), 1)
        XCTAssertEqual(ranges.allocate(20), 11)
        XCTAssertEqual(ranges.allocate(30), 31)
        ranges.free(base: 11)
        XCTAssertEqual(ranges.allocate(5), 11)
        XCTAssertEqual(ranges.allocate(15), 16, "the rest of the freed range comes first")
        XCTAssertEqual(ranges.free, 99 - 10 - 5 - 15 - 30)
        XCTAssertNil(ranges.allocate(40))
        ranges.claim(base: 61, count: 15)
        XCTAssertEqual(ranges.allocate(24), 76)
        XCTAssertNil(ranges.allocate(1))
    }

    func testRecordsAreToldApartByKind() throws {
        var http = na_l7_event()
        http.flow.kind = UInt16(NA_EVENT_L7_HTTP.rawValue)
        http.flow.reason = 230
        http.method_len = 4
        setTupleBytes(&http.method, Array("POST".utf8))
        http.path_len = 7
        setTupleBytes(&http.path, Array("/a?b=%2".utf8))
        http.host_len = 0
        http.rule_index = 255
        let record = try XCTUnwrap(FlowRecord(bytesOf(http)))
        XCTAssertEqual(record.event.reason, 230)
        XCTAssertEqual(record.l7, Flow.L7(method: "POST", url: "/a?b=%2", host: "", ruleIndex: nil))
        XCTAssertEqual(
            record.l7?.json.serialized(), #"{"http":{"method":"POST","url":"/a?b=%2"},"type":"REQUEST"}"#)

        var plain = na_flow_event()
        plain.kind = UInt16(NA_EVENT_L34.rawValue)
        XCTAssertNil(try XCTUnwrap(FlowRecord(bytesOf(plain))).l7)
        // An HTTP record cut to the size of a flow header is an ABI mismatch, not a flow without its request.
        XCTAssertNil(FlowRecord(Array(bytesOf(http).prefix(MemoryLayout<na_flow_event>.size))))
    }
}
