import AgentAPI
import EtcdClient
import EtcdTestSupport
import Synchronization
import XCTest

@testable import Cluster

/// A node's lease and the keys it owns, against a real etcd.
final class ClusterSessionTests: EtcdBackedTestCase {
    func testOwnedKeysAreWrittenUnderTheLeaseAndWithdrawn() throws {
        let session = ClusterSession(client: client, ttlSeconds: 5, logger: logger)
        session.own("/\(clusterName)/a", Array("1".utf8))
        session.start()
        defer { session.stop() }
        try eventually("a written") { try client.get("/\(clusterName)/a")?.valueString == "1" }
        let lease = try XCTUnwrap(session.lease)
        XCTAssertEqual(try client.get("/\(clusterName)/a")?.lease, lease)
        session.own("/\(clusterName)/a", Array("2".utf8))
        session.own("/\(clusterName)/b", Array("3".utf8))
        try eventually("a changed, b written") {
            try client.get("/\(clusterName)/a")?.valueString == "2" && client.get("/\(clusterName)/b") != nil
        }
        session.disown("/\(clusterName)/a")
        try eventually("a deleted") { try client.get("/\(clusterName)/a") == nil }
        // The session records a write just after etcd acknowledges it.
        try eventually("in sync") { session.isInSync }
    }

    func testALostLeaseIsReplacedAndEverythingWrittenAgain() throws {
        let session = ClusterSession(client: client, ttlSeconds: 5, logger: logger)
        for index in 0..<20 { session.own("/\(clusterName)/k\(index)", Array("v\(index)".utf8)) }
        session.start()
        defer { session.stop() }
        try eventually("written") { try client.range(prefix: "/\(clusterName)/").kvs.count == 20 }
        // What etcd does when a lease expires: the lease and its keys go.
        let first = try XCTUnwrap(session.lease)
        try client.revoke(first)
        XCTAssertEqual(try client.range(prefix: "/\(clusterName)/").kvs.count, 0)
        // The next renewal (a third of the TTL) notices and writes everything again under a new lease.
        try eventually("written again", timeout: 6) {
            let kvs = try client.range(prefix: "/\(clusterName)/").kvs
            return kvs.count == 20 && kvs.allSatisfy { $0.lease != first && $0.lease == session.lease }
        }
    }

    func testAWriteThatFindsTheLeaseGoneTakesANewOneAtOnce() throws {
        // Renewals every 10 s, retries after a failure 1 s later: only dropping the lease on "lease not found"
        // writes within half a second.
        let session = ClusterSession(client: client, ttlSeconds: 30, logger: logger)
        session.own("/\(clusterName)/first", [])
        session.start()
        defer { session.stop() }
        try eventually("written") { try client.get("/\(clusterName)/first") != nil }
        let first = try XCTUnwrap(session.lease)
        try client.revoke(first)
        let started = Date()
        session.own("/\(clusterName)/second", Array("2".utf8))
        try eventually("both written under a new lease", timeout: 5) {
            let kvs = try client.range(prefix: "/\(clusterName)/").kvs
            return kvs.count == 2 && kvs.allSatisfy { $0.lease != first && $0.lease == session.lease }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.5, "a new lease without waiting for a retry")
    }

    /// A restarted agent's session takes up the lease its node held: the keys it owns again stay in etcd under it
    /// (written again), those it no longer owns are deleted, and the owner is told the lease.
    func testAResumedLeaseKeepsWhatIsOwnedAgainAndDeletesTheRest() throws {
        let node = "/\(clusterName)/nodes/node1"
        let first = ClusterSession(client: client, ttlSeconds: 30, logger: logger)
        for key in [node, "/\(clusterName)/kept", "/\(clusterName)/gone"] { first.own(key, Array("1".utf8)) }
        first.start()
        try eventually("written") { first.isInSync }
        let lease = try XCTUnwrap(first.lease)
        first.stop()

        let told = Leases()
        let second = ClusterSession(client: client, ttlSeconds: 30, logger: logger)
        second.own(node, Array("1".utf8))
        second.own("/\(clusterName)/kept", Array("2".utf8))
        second.onLease { lease in told.ids.withLock { $0.append(lease) } }
        second.resume(lease: lease, provedBy: node)
        second.start()
        defer { second.stop() }
        try eventually("in sync") { second.isInSync }
        XCTAssertEqual(second.lease, lease)
        XCTAssertEqual(told.ids.withLock { $0 }, [lease])
        let kvs = try client.range(prefix: "/\(clusterName)/").kvs
        XCTAssertEqual(kvs.map(\.key).sorted(), ["/\(clusterName)/kept", node])
        XCTAssertTrue(kvs.allSatisfy { $0.lease == lease })
        XCTAssertEqual(try client.get("/\(clusterName)/kept")?.valueString, "2")
    }

    /// A lease that does not hold the proof key is not the node's: a new one is granted and the lease left alone.
    func testALeaseWithoutTheNodesKeyIsNotResumed() throws {
        let other = try client.grant(ttl: 30)
        try client.put("/\(clusterName)/nodes/node2", "x", lease: other.id)
        let session = ClusterSession(client: client, ttlSeconds: 30, logger: logger)
        session.own("/\(clusterName)/nodes/node1", Array("1".utf8))
        session.resume(lease: other.id, provedBy: "/\(clusterName)/nodes/node1")
        session.start()
        defer { session.stop() }
        try eventually("in sync") { session.isInSync }
        XCTAssertNotEqual(session.lease, other.id)
        XCTAssertEqual(try client.get("/\(clusterName)/nodes/node2")?.valueString, "x", "the other lease's key stays")
    }

    func testOwnershipWaitsForEtcdAndConvergesWhenItReturns() throws {
        let session = ClusterSession(client: client, ttlSeconds: 5, logger: logger)
        session.start()
        defer { session.stop() }
        try eventually("lease") { session.lease != nil }
        let url = server.clientURL
        server.stop()
        session.own("/\(clusterName)/late", Array("x".utf8))
        try eventually("an error recorded") { session.lastError != nil }
        XCTAssertFalse(session.isInSync)
        // A new etcd on the same address (the old one's data is gone: as after losing every member).
        server = try EtcdServer(clientURL: url)
        try eventually("written after etcd returned", timeout: 10) {
            try client.get("/\(clusterName)/late")?.valueString == "x"
        }
        try eventually("in sync") { session.isInSync }
    }

    func testStopWithRevokeRemovesTheKeysAtOnce() throws {
        let session = ClusterSession(client: client, ttlSeconds: 30, logger: logger)
        session.own("/\(clusterName)/n", [])
        session.start()
        try eventually("written") { try client.get("/\(clusterName)/n") != nil }
        session.stop(revoke: true)
        XCTAssertNil(try client.get("/\(clusterName)/n"))
    }
}

/// Leases a session told of.
private final class Leases: Sendable {
    let ids = Mutex<[Int64]>([])
}
