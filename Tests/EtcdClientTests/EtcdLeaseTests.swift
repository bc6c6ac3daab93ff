import AgentAPI
import EtcdClient
import XCTest

final class EtcdLeaseTests: EtcdTestCase {
    func testRevokeRemovesTheLeasesKeys() throws {
        let lease = try client.grant(ttl: 30)
        XCTAssertNotEqual(lease.id, 0)
        XCTAssertEqual(lease.ttl, 30)
        try client.put(prefix + "node", "10.0.0.1", lease: lease.id)
        try client.put(prefix + "kept", "no lease")
        XCTAssertEqual(try client.get(prefix + "node")?.lease, lease.id)

        let remaining = try client.keepAliveOnce(lease.id)
        XCTAssertGreaterThan(remaining, 0)
        XCTAssertLessThanOrEqual(remaining, 30)

        try client.revoke(lease.id)
        XCTAssertNil(try client.get(prefix + "node"))
        XCTAssertEqual(try client.get(prefix + "kept")?.valueString, "no lease")
        XCTAssertEqual(try client.keepAliveOnce(lease.id), 0)
        XCTAssertThrowsError(try client.revoke(lease.id)) { error in
            XCTAssertEqual((error as? AgentError)?.status, 404, "\(error)")
        }
        // A put on a lease that does not exist is refused.
        XCTAssertThrowsError(try client.put(prefix + "orphan", "x", lease: lease.id))
    }

    func testTimeToLiveListsTheLeasesKeysUntilItIsGone() throws {
        let lease = try client.grant(ttl: 30)
        try client.put(prefix + "a", "1", lease: lease.id)
        try client.put(prefix + "b", "2", lease: lease.id)
        try client.put(prefix + "other", "no lease")
        let found = try XCTUnwrap(try client.timeToLive(lease.id))
        XCTAssertGreaterThan(found.ttl, 0)
        XCTAssertLessThanOrEqual(found.ttl, 30)
        XCTAssertEqual(found.keys.sorted(), [prefix + "a", prefix + "b"])
        try client.revoke(lease.id)
        XCTAssertNil(try client.timeToLive(lease.id))
    }

    func testKeepAliveOnAnExpiredLeaseReturnsZero() throws {
        let lease = try client.grant(ttl: 1)
        try client.put(prefix + "short", "lived", lease: lease.id)
        // Expiry deletes the lease's keys; no keepalive may be sent before that, or it would renew the lease.
        // etcd revokes an expired lease through its log, which a loaded machine's disk can hold up for seconds.
        let deadline = Date().addingTimeInterval(Double(lease.ttl) + 20)
        while try client.get(prefix + "short") != nil, Date() < deadline { usleep(200_000) }
        XCTAssertNil(try client.get(prefix + "short"), "the lease did not expire")
        XCTAssertEqual(try client.keepAliveOnce(lease.id), 0)
    }
}
