import CNodeABI
import DatapathCore
import XCTest

final class IPCacheKeyTests: XCTestCase {
    func testKeysCarryFamilyLengthAndSixteenBytes() throws {
        let v4 = try XCTUnwrap(IPPrefix("10.1.0.0/16"))
        let key = na_ipcache_key(v4)
        XCTAssertEqual(key.family, 2)
        XCTAssertEqual(key.prefixlen, UInt32(NA_IPCACHE_PREFIX_BASE) + 16, "counted past the family byte")
        XCTAssertEqual(tupleBytes(key.addr), [10, 1] + [UInt8](repeating: 0, count: 14))
        XCTAssertEqual(key.prefix, v4)

        let host = try XCTUnwrap(IPAddress("fd00::7"))
        let hostKey = na_ipcache_key(host)
        XCTAssertEqual(hostKey.family, 10)
        XCTAssertEqual(hostKey.prefixlen, UInt32(NA_IPCACHE_PREFIX_BASE) + 128)
        XCTAssertEqual(tupleBytes(hostKey.addr), host.keyBytes)
        XCTAssertEqual(hostKey.prefix?.description, "fd00::7/128")
    }

    func testAddressesFromKeyFields() {
        let field: [UInt8] = [192, 0, 2, 1] + [UInt8](repeating: 0xAA, count: 12)
        XCTAssertEqual(IPAddress(familyByte: 2, key: field)?.description, "192.0.2.1", "IPv4 is the first four")
        XCTAssertNil(IPAddress(familyByte: 7, key: field), "no family of ours")
        var unknown = na_ipcache_key()
        unknown.family = 7
        XCTAssertNil(unknown.prefix)
    }
}
