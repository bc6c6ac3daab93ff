import AgentAPI
import CLibbpf
import DatapathCore
import Glibc
import XCTest

/// A failed map operation keeps the kernel's errno, and a full map is a 507 rather than an internal error.
final class MapErrorTests: XCTestCase {
    func testFullHashMapIsCapacityWithE2BIG() throws {
        let map = try BPFMap.create(type: .hash, name: "na_test_full", keySize: 4, valueSize: 4, maxEntries: 2)
        for key in 0..<2 { try map.update(key: [UInt8(key), 0, 0, 0], value: [1, 0, 0, 0]) }

        XCTAssertThrowsError(try map.update(key: [9, 0, 0, 0], value: [1, 0, 0, 0])) {
            let error = $0 as? AgentError
            XCTAssertEqual(error?.errno, E2BIG)
            XCTAssertEqual(error?.status, 507)
            XCTAssertEqual(error?.code, .capacity)
        }
    }

    func testFullLPMTrieIsCapacityWithENOSPC() throws {
        // key: prefixlen (4 bytes) + 4 address bytes; LPM tries need BPF_F_NO_PREALLOC.
        let map = try BPFMap.create(
            type: .lpmTrie, name: "na_test_lpm", keySize: 8, valueSize: 4, maxEntries: 1,
            flags: UInt32(BPF_F_NO_PREALLOC))
        try map.update(key: [32, 0, 0, 0, 10, 0, 0, 1], value: [1, 0, 0, 0])

        XCTAssertThrowsError(try map.update(key: [32, 0, 0, 0, 10, 0, 0, 2], value: [1, 0, 0, 0])) {
            let error = $0 as? AgentError
            XCTAssertEqual(error?.errno, ENOSPC)
            XCTAssertEqual(error?.status, 507)
        }
    }

    func testOtherKernelFailuresStayDatapathErrorsWithTheirErrno() throws {
        let map = try BPFMap.create(type: .hash, name: "na_test_exist", keySize: 4, valueSize: 4, maxEntries: 2)
        try map.update(key: [1, 0, 0, 0], value: [1, 0, 0, 0])

        XCTAssertThrowsError(try map.update(key: [1, 0, 0, 0], value: [2, 0, 0, 0], flags: .noExist)) {
            let error = $0 as? AgentError
            XCTAssertEqual(error?.errno, EEXIST)
            XCTAssertEqual(error?.status, 500)
            XCTAssertEqual(error?.code, .datapath)
        }
    }
}
