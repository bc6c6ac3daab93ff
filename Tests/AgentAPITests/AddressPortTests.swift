import AgentAPI
import XCTest

final class AddressPortTests: XCTestCase {
    func testParsesAndPrintsBothFamilies() throws {
        let v4 = try XCTUnwrap(AddressPort("10.96.0.10:80"))
        XCTAssertEqual(v4.address, IPAddress("10.96.0.10"))
        XCTAssertEqual(v4.port, 80)
        XCTAssertEqual("\(v4)", "10.96.0.10:80")
        let v6 = try XCTUnwrap(AddressPort("[FD00::A]:65535"))
        XCTAssertEqual(v6.address, IPAddress("fd00::a"))
        XCTAssertEqual(v6.port, 65535)
        XCTAssertEqual("\(v6)", "[fd00::a]:65535")
    }

    func testRefusesWhatIsNotExactlyAddressAndPort() {
        for text in [
            "", "10.96.0.10", "10.96.0.10:", "10.96.0.10:0", "10.96.0.10:65536", "10.96.0.10:080", "10.96.0.10:+80",
            "10.96.0.10:8 0", "fd00::a:80", "[fd00::a]80", "[fd00::a]:", "[10.96.0.10]:80", "host:80", ":80",
            "10.96.0.10:80:81",
        ] {
            XCTAssertNil(AddressPort(text), "\"\(text)\" should be refused")
        }
    }
}
