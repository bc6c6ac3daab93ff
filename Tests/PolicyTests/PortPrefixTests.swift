import XCTest

@testable import Policy

final class PortPrefixTests: XCTestCase {
    private func split(_ range: ClosedRange<UInt16>) -> [String] {
        PortPrefix.split(range).map { "\($0.port)/\($0.bits)" }
    }

    /// Every port of `range` is covered exactly once, nothing outside it, and blocks are aligned.
    private func assertExactCover(_ range: ClosedRange<UInt16>, file: StaticString = #filePath, line: UInt = #line) {
        var covered = 0
        for (port, bits) in PortPrefix.split(range) {
            let size = 1 << (16 - Int(bits))
            XCTAssertEqual(Int(port) % size, 0, "unaligned \(port)/\(bits)", file: file, line: line)
            XCTAssertGreaterThanOrEqual(Int(port), Int(range.lowerBound), file: file, line: line)
            XCTAssertLessThanOrEqual(Int(port) + size - 1, Int(range.upperBound), file: file, line: line)
            covered += size
        }
        XCTAssertEqual(covered, range.count, file: file, line: line)
    }

    func testSplits() {
        XCTAssertEqual(split(8080...8080), ["8080/16"])
        XCTAssertEqual(split(8000...8010), ["8000/13", "8008/15", "8010/16"])
        XCTAssertEqual(split(0...65535), ["0/0"])
        XCTAssertEqual(
            split(1...65535),
            [
                "1/16", "2/15", "4/14", "8/13", "16/12", "32/11", "64/10", "128/9", "256/8", "512/7", "1024/6",
                "2048/5",
                "4096/4", "8192/3", "16384/2", "32768/1",
            ])
        XCTAssertEqual(split(0...0), ["0/16"])
        XCTAssertEqual(split(65535...65535), ["65535/16"])
        XCTAssertEqual(split(0...1), ["0/15"])
        XCTAssertEqual(split(1024...2047), ["1024/6"])
        XCTAssertEqual(split(32768...65535), ["32768/1"])
        XCTAssertEqual(split(0...32767), ["0/1"])
        for range: ClosedRange<UInt16> in [8000...8010, 1...65535, 0...65534, 3...5, 1023...1025, 40000...60001] {
            assertExactCover(range)
        }
    }

    func testEntryPrefixArithmetic() {
        let range = PolicyEntry(identity: 5, direction: .egress, proto: 6, port: 8000, portPrefixBits: 13)
        XCTAssertEqual(range.prefixLength, 61)
        XCTAssertEqual(range.endPort, 8007)
        XCTAssertTrue(range.matches(proto: 6, port: 8007))
        XCTAssertFalse(range.matches(proto: 6, port: 8008))
        XCTAssertFalse(range.matches(proto: 17, port: 8000))
        let anyPort = PolicyEntry(identity: 5, direction: .egress, proto: 17)
        XCTAssertEqual(anyPort.prefixLength, 48)
        XCTAssertEqual(anyPort.endPort, 65535)
        XCTAssertTrue(anyPort.matches(proto: 17, port: 53))
        let anyProto = PolicyEntry(identity: 5, direction: .egress)
        XCTAssertEqual(anyProto.prefixLength, 40)
        XCTAssertTrue(anyProto.matches(proto: 1, port: 0))
        XCTAssertTrue(anyProto.keyCovers(range))
        XCTAssertTrue(
            anyPort.keyCovers(PolicyEntry(identity: 5, direction: .egress, proto: 17, port: 53, portPrefixBits: 16)))
        XCTAssertFalse(anyPort.keyCovers(range))
        XCTAssertFalse(range.keyCovers(anyPort))
        XCTAssertEqual(range.description, "egress identity=5 TCP 8000-8007 allow []")
    }
}
