import DatapathCore
import XCTest

@testable import IPAMClusterPool

final class PodCIDRTests: XCTestCase {
    func testIPv4ReservesNetworkGatewayAndBroadcast() throws {
        let cidr = try XCTUnwrap(PodCIDR(try XCTUnwrap(IPPrefix("10.0.1.0/24"))))
        XCTAssertEqual(cidr.gateway, ip("10.0.1.1"))
        XCTAssertEqual(cidr.capacity, 253)
        XCTAssertEqual(cidr.address(at: cidr.firstUsable), ip("10.0.1.2"))
        XCTAssertEqual(cidr.address(at: cidr.lastUsable), ip("10.0.1.254"))
        XCTAssertEqual(cidr.reservation(at: try XCTUnwrap(cidr.offset(of: ip("10.0.1.0")))), "the network address")
        XCTAssertEqual(cidr.reservation(at: try XCTUnwrap(cidr.offset(of: ip("10.0.1.1")))), "the gateway")
        XCTAssertEqual(cidr.reservation(at: try XCTUnwrap(cidr.offset(of: ip("10.0.1.255")))), "the broadcast address")
        XCTAssertNil(cidr.reservation(at: try XCTUnwrap(cidr.offset(of: ip("10.0.1.254")))))
        XCTAssertNil(cidr.offset(of: ip("10.0.2.1")))
        XCTAssertNil(cidr.offset(of: ip("fd00::1")))
    }

    func testIPv6ReservesSubnetRouterAnycastAndGatewayOnly() throws {
        let cidr = try XCTUnwrap(PodCIDR(try XCTUnwrap(IPPrefix("fd00:0:0:1::/120"))))
        XCTAssertEqual(cidr.gateway, ip("fd00:0:0:1::1"))
        XCTAssertEqual(cidr.capacity, 254)
        XCTAssertEqual(cidr.reservation(at: 0), "the subnet-router anycast address")
        XCTAssertEqual(cidr.reservation(at: 1), "the gateway")
        XCTAssertNil(cidr.reservation(at: 255), "IPv6 has no broadcast address")
        XCTAssertEqual(cidr.address(at: cidr.lastUsable), ip("fd00:0:0:1::ff"))
    }

    func testOffsetsRoundTripAcrossByteBoundaries() throws {
        let cidr = try XCTUnwrap(PodCIDR(try XCTUnwrap(IPPrefix("fd00:aa::/80"))))
        for offset: UInt64 in [2, 255, 256, 65_535, 1 << 40, cidr.lastUsable] {
            let address = cidr.address(at: offset)
            XCTAssertEqual(cidr.offset(of: address), offset, "\(address)")
        }
        XCTAssertEqual(cidr.address(at: 0x1_0203).description, "fd00:aa::1:203")
    }

    func testTooSmallOrTooLargeCIDRsAreRefused() throws {
        XCTAssertNil(PodCIDR(try XCTUnwrap(IPPrefix("10.0.0.0/31"))))
        XCTAssertNotNil(PodCIDR(try XCTUnwrap(IPPrefix("10.0.0.0/30"))))
        XCTAssertNil(PodCIDR(try XCTUnwrap(IPPrefix("fd00::/64"))), "64 host bits do not fit the 63-bit counters")
        XCTAssertNotNil(PodCIDR(try XCTUnwrap(IPPrefix("fd00::/65"))))
    }
}
