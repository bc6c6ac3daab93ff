import AgentAPI
import EtcdClient
import XCTest

final class EtcdKVTests: EtcdTestCase {
    func testPutGetRangeDelete() throws {
        XCTAssertNil(try client.get(prefix + "a"))
        let first = try client.put(prefix + "a", "one")
        try client.put(prefix + "b", [0, 1, 0xff])
        let second = try client.put(prefix + "a", "two")
        XCTAssertGreaterThan(second, first)
        try client.put(prefix.dropLast() + "-outside", "not under the prefix")

        let a = try XCTUnwrap(client.get(prefix + "a"))
        XCTAssertEqual(a.valueString, "two")
        XCTAssertEqual(a.createRevision, first)
        XCTAssertEqual(a.modRevision, second)
        XCTAssertEqual(a.version, 2)
        XCTAssertEqual(a.lease, 0)

        let listed = try client.range(prefix: prefix)
        XCTAssertEqual(listed.kvs.map(\.key), [prefix + "a", prefix + "b"])
        XCTAssertEqual(listed.kvs[1].value, [0, 1, 0xff])
        XCTAssertEqual(listed.revision, second + 1)

        XCTAssertEqual(try client.delete(prefix + "a"), 1)
        XCTAssertEqual(try client.delete(prefix + "a"), 0)
        XCTAssertNil(try client.get(prefix + "a"))
        try client.put(prefix + "c", "three")
        XCTAssertEqual(try client.deletePrefix(prefix), 2)
        XCTAssertEqual(try client.range(prefix: prefix).kvs, [])
        XCTAssertEqual(try client.get(prefix.dropLast() + "-outside")?.valueString, "not under the prefix")
    }
}
