import AgentAPI
import XCTest

final class IPAddressTests: XCTestCase {
    func testParsesBothFamilies() throws {
        let v4 = try XCTUnwrap(IPAddress("192.0.2.10"))
        XCTAssertEqual(v4.family, .ipv4)
        XCTAssertEqual(v4.bytes, [192, 0, 2, 10])
        XCTAssertEqual(v4.bitLength, 32)
        let v6 = try XCTUnwrap(IPAddress("fd00::1"))
        XCTAssertEqual(v6.family, .ipv6)
        XCTAssertEqual(v6.bytes, [0xfd] + [UInt8](repeating: 0, count: 14) + [1])
        XCTAssertEqual(v6.bitLength, 128)
        XCTAssertEqual(
            IPAddress("::ffff:10.0.0.1")?.bytes, [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 10, 0, 0, 1])
        XCTAssertEqual(IPAddress("1:2:3:4:5:6:1.2.3.4"), IPAddress("1:2:3:4:5:6:102:304"))
        XCTAssertEqual(IPAddress("1:2:3:4:5:6:7::"), IPAddress("1:2:3:4:5:6:7:0"), "a gap of one group")
        XCTAssertEqual(IPAddress("FD00::ABCD"), IPAddress("fd00::abcd"))
        XCTAssertEqual(IPAddress.Family.ipv4.rawValue, 2, "AF_INET, the datapath's family byte")
        XCTAssertEqual(IPAddress.Family.ipv6.rawValue, 10, "AF_INET6")
    }

    func testRejectsLooseText() {
        for bad in [
            "", "1.2.3", "1.2.3.4.5", "1.2.3.", ".1.2.3", "010.0.0.1", "00.0.0.1", "256.0.0.1", "1.2.3.4 ", " 1.2.3.4",
            "+1.2.3.4", "１.2.3.4", "1.2.3.4/32", "::1::", "1::2::3", ":1::", "1:", ":::", "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "12345::", "g::", "fe80::1%eth0", "1.2.3.4::", "::1.2.3",
            "::01.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4:5", "fd00::-1",
        ] {
            XCTAssertNil(IPAddress(bad), bad)
        }
    }

    /// RFC 5952: lower case, no leading zeros, the longest run of two or more zero groups compressed (the first of
    /// equal runs), a single zero group left as 0, and IPv4-mapped addresses in hex like any other.
    func testCanonicalText() {
        let cases = [
            ("10.0.0.1", "10.0.0.1"), ("0.0.0.0", "0.0.0.0"), ("FD00:0:0:0:0:0:0:1", "fd00::1"),
            ("2001:0db8::0001", "2001:db8::1"), ("1:0:0:2:0:0:0:3", "1:0:0:2::3"), ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
            ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"), ("::", "::"), ("::1", "::1"), ("1::", "1::"),
            ("::ffff:10.0.0.1", "::ffff:a00:1"), ("fd00:020c::1", "fd00:20c::1"),
        ]
        for (text, canonical) in cases {
            XCTAssertEqual(IPAddress(text)?.description, canonical, text)
        }
    }

    func testOrderLinkLocalAndTruncation() throws {
        let a = try XCTUnwrap(IPAddress("10.0.0.2"))
        let b = try XCTUnwrap(IPAddress("10.0.0.10"))
        let c = try XCTUnwrap(IPAddress("::1"))
        XCTAssertEqual([c, b, a].sorted(), [a, b, c], "by family, then bytes")
        XCTAssertTrue(IPAddress("fe80::1")?.isLinkLocal ?? false)
        XCTAssertTrue(IPAddress("169.254.3.4")?.isLinkLocal ?? false)
        XCTAssertFalse(IPAddress("fd00::1")?.isLinkLocal ?? true)
        XCTAssertFalse(IPAddress("10.0.0.1")?.isLinkLocal ?? true)
        XCTAssertEqual(IPAddress(family: .ipv4, bytes: [10, 0, 0, 1, 0, 0, 0, 0]).bytes, [10, 0, 0, 1])
    }
}
