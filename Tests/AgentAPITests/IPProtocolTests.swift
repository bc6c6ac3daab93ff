import AgentAPI
import XCTest

final class IPProtocolTests: XCTestCase {
    func testNamesInAnyCaseAndNumbers() {
        XCTAssertEqual(IPProtocol.number(of: "tcp"), 6)
        XCTAssertEqual(IPProtocol.number(of: "UDP"), 17)
        XCTAssertEqual(IPProtocol.number(of: "Sctp"), 132)
        XCTAssertEqual(IPProtocol.number(of: "icmpv6"), 58)
        XCTAssertEqual(IPProtocol.number(of: "ANY"), 0)
        XCTAssertEqual(IPProtocol.number(of: "47"), 47)
        XCTAssertNil(IPProtocol.number(of: "256"))
        XCTAssertNil(IPProtocol.number(of: "http"))
        XCTAssertNil(IPProtocol.number(of: "+6"))
        for proto: UInt8 in [0, 1, 6, 17, 58, 132, 47] {
            XCTAssertEqual(IPProtocol.number(of: IPProtocol.name(of: proto)), proto)
        }
        XCTAssertEqual(IPProtocol.name(of: 58), "ICMPv6")
    }
}
