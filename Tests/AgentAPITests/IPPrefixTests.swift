import AgentAPI
import XCTest

final class IPPrefixTests: XCTestCase {
    func testParsingClearsHostBitsAndPrintsCanonicalText() throws {
        XCTAssertEqual(try IPPrefix(parsing: "192.168.1.7/24").description, "192.168.1.0/24")
        XCTAssertEqual(try IPPrefix(parsing: "10.1.2.3").description, "10.1.2.3/32")
        XCTAssertEqual(try IPPrefix(parsing: "0.0.0.0/0").description, "0.0.0.0/0")
        XCTAssertEqual(try IPPrefix(parsing: "FD00:0:0:0:0:0:0:1/64").description, "fd00::/64")
        XCTAssertEqual(try IPPrefix(parsing: "2001:db8::1").description, "2001:db8::1/128")
        XCTAssertEqual(try IPPrefix(parsing: "::ffff:10.0.0.1").description, "::ffff:10.0.0.1/128")
        XCTAssertEqual(try IPPrefix(parsing: "::/0").description, "::/0")
        XCTAssertEqual(try IPPrefix(parsing: "1:0:0:2:0:0:0:3").description, "1:0:0:2::3/128")
        XCTAssertEqual(try IPPrefix(parsing: "10.0.0.0/008").length, 8, "up to three digits, as before")
        XCTAssertEqual(IPPrefix("10.0.255.1/17")?.address, IPAddress("10.0.128.0"))
        XCTAssertEqual(IPPrefix("fd00::/64")?.family, .ipv6)
    }

    func testRejectsWhatAnyEarlierParserRejected() {
        for bad in [
            "10.0.0.0/", "010.0.0.0/8", "10.0.0.256/32", "1::2::3", "1:2:3:4:5:6:7:8:9", "fd00::/129", "x",
            "10.0.0.0/8/8", ":1::", "1:", "", "/8", "10.0.0.0/33", "10.0.0.0/+8", "10.0.0.0/-0", "10.0.0.0/0008",
            "10.0.0.0/ 8", "10.0.0.0/８", "fe80::1%eth0/64", " 10.0.0.0/8",
        ] {
            XCTAssertThrowsError(try IPPrefix(parsing: bad), bad)
            XCTAssertNil(IPPrefix(bad), bad)
        }
    }

    func testParseErrorsSayWhatIsWrong() {
        func reason(_ text: String) -> String? {
            do {
                _ = try IPPrefix(parsing: text)
                return nil
            } catch {
                return error.reason
            }
        }
        XCTAssertEqual(reason("10.0.0.0.0/8"), "is not a CIDR prefix")
        XCTAssertEqual(reason("fd00:::/8"), "is not an IPv6 prefix")
        XCTAssertEqual(reason("10.0.0.0/33"), "has a bad prefix length (expected 0...32)")
        XCTAssertEqual(reason("fd00::/x"), "has a bad prefix length (expected 0...128)")
    }

    func testContainment() throws {
        let net = try IPPrefix(parsing: "10.0.0.0/8")
        XCTAssertTrue(net.contains(try IPPrefix(parsing: "10.1.0.0/16")))
        XCTAssertFalse(net.contains(try IPPrefix(parsing: "11.0.0.0/16")))
        XCTAssertFalse(try IPPrefix(parsing: "10.1.0.0/16").contains(net))
        XCTAssertFalse(net.contains(try IPPrefix(parsing: "fd00::/8")))
        XCTAssertTrue(net.contains(net))
        XCTAssertTrue(net.contains(try XCTUnwrap(IPAddress("10.255.255.255"))))
        XCTAssertFalse(net.contains(try XCTUnwrap(IPAddress("11.0.0.0"))))
        XCTAssertFalse(try IPPrefix(parsing: "::/0").contains(try XCTUnwrap(IPAddress("10.0.0.1"))), "other family")
        XCTAssertTrue(try IPPrefix(parsing: "::/0").contains(try XCTUnwrap(IPAddress("fd00::1"))))
    }
}
