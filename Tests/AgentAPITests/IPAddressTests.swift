import AgentAPI
import Glibc
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
    /// equal runs), a single zero group left as 0, and an IPv4 address embedded in a mapped one dotted (section 5).
    func testCanonicalText() {
        let cases = [
            ("10.0.0.1", "10.0.0.1"), ("0.0.0.0", "0.0.0.0"), ("FD00:0:0:0:0:0:0:1", "fd00::1"),
            ("2001:0db8::0001", "2001:db8::1"), ("1:0:0:2:0:0:0:3", "1:0:0:2::3"), ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
            ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"), ("::", "::"), ("::1", "::1"), ("1::", "1::"),
            ("::ffff:10.0.0.1", "::ffff:10.0.0.1"), ("::ffff:a00:1", "::ffff:10.0.0.1"), ("::10.0.0.1", "::10.0.0.1"),
            ("fd00:020c::1", "fd00:20c::1"),
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

    /// The text the agent printed through inet_ntop before, so the API's JSON stays the same, for every address.
    func testTextMatchesTheCLibrary() throws {
        var generator = SystemRandomNumberGenerator()
        for round in 0..<20_000 {
            // Mostly zero groups, so runs of every length and position occur.
            let groups = (0..<8).map { _ in
                Int.random(in: 0..<4, using: &generator) == 0 ? UInt16.random(in: 0...0xFFFF, using: &generator) : 0
            }
            let bytes = groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
            let v6 = IPAddress(family: .ipv6, bytes: bytes)
            XCTAssertEqual(v6.description, cLibraryText(AF_INET6, bytes), "round \(round)")
            XCTAssertEqual(IPAddress(v6.description), v6)
            let v4 = IPAddress(family: .ipv4, bytes: Array(bytes.prefix(4)))
            XCTAssertEqual(v4.description, cLibraryText(AF_INET, v4.bytes))
        }
    }

    /// Whatever the parser accepts, inet_pton (what parsed addresses before) accepts too, as the same address.
    func testAcceptsNothingTheCLibraryRejects() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789abcdefABCDEFxg:.:.%/ -+")
        let seeds = [
            "10.0.0.1", "255.255.255.255", "0.0.0.0", "fd00::1", "::ffff:10.0.0.1", "1:2:3:4:5:6:7:8", "::", "1::",
        ]
        var accepted = 0
        for _ in 0..<50_000 {
            var text = Array(seeds.randomElement(using: &generator)!)
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let at = Int.random(in: 0...text.count, using: &generator)
                let c = alphabet.randomElement(using: &generator)!
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: text.insert(c, at: at)
                case 1 where at < text.count: text.remove(at: at)
                default: if at < text.count { text[at] = c }
                }
            }
            let string = String(text)
            guard let parsed = IPAddress(string) else { continue }
            accepted += 1
            var buffer = [UInt8](repeating: 0, count: 16)
            let family = parsed.family == .ipv4 ? AF_INET : AF_INET6
            XCTAssertEqual(inet_pton(family, string, &buffer), 1, string)
            XCTAssertEqual(Array(buffer.prefix(parsed.bytes.count)), parsed.bytes, string)
        }
        XCTAssertGreaterThan(accepted, 1000, "the mutations leave enough valid text to compare")
    }

    func testIPv4InIPv6TextIsTheCLibrarysDottedForm() throws {
        let embedded = [
            "::ffff:10.0.0.1", "::ffff:0.0.0.0", "::ffff:255.255.255.255", "::10.0.0.1", "::0.1.0.2", "::1", "::",
            "::1:0:0:0:1", "0:0:0:0:0:fffe:a00:1", "1::ffff:a00:1", "::ffff:0:a00:1",
        ]
        for text in embedded {
            let address = try XCTUnwrap(IPAddress(text), text)
            XCTAssertEqual(address.description, cLibraryText(AF_INET6, address.bytes), text)
        }
        XCTAssertEqual(IPAddress("::ffff:a00:1")?.description, "::ffff:10.0.0.1")
    }

    private func cLibraryText(_ family: Int32, _ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        return String(cString: buffer)
    }
}
