import AgentAPI
import XCTest

@testable import Agent

/// `GET /v1/healthz` splices the kernel part, serialized once, into each answer: the result must be the JSON the
/// whole tree would serialize to.
final class HealthBodyTests: XCTestCase {
    func testASplicedPartReadsAsTheWholeTree() throws {
        let kernel: JSON = ["version": "6.18.0", "checks": ["bpffs": "ok", "btf": "ok"], "problems": []]
        let whole: JSON = ["status": "ok", "kernel": kernel, "uptime-seconds": 5, "version": "0.1.0"]
        let withPlaceholder: JSON = [
            "status": "ok", "kernel": "na-kernel-health", "uptime-seconds": 5, "version": "0.1.0",
        ]
        let spliced = withPlaceholder.serializedBytes().replacingFirst(
            Array("\"na-kernel-health\"".utf8), with: kernel.serializedBytes())
        XCTAssertEqual(spliced, whole.serializedBytes(), "keys stay sorted, bytes equal")
        XCTAssertEqual(try JSON.parse(spliced), whole)
    }

    func testOnlyTheFirstOccurrenceIsReplacedAndAMissingPatternChangesNothing() {
        let bytes = Array("a-x-x".utf8)
        XCTAssertEqual(bytes.replacingFirst(Array("x".utf8), with: Array("yy".utf8)), Array("a-yy-x".utf8))
        XCTAssertEqual(bytes.replacingFirst(Array("z".utf8), with: Array("yy".utf8)), bytes)
        XCTAssertEqual(bytes.replacingFirst(Array("a-x-x-".utf8), with: []), bytes)
    }
}
