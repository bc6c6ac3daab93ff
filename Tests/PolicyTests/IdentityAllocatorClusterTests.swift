import AgentAPI
import XCTest

@testable import Policy

/// Identities numbered by the cluster's store: learned, held, released and forgotten.
final class IdentityAllocatorClusterTests: XCTestCase {
    let web = labels("k8s:app=web", "k8s:io.kubernetes.pod.namespace=prod")
    let db = labels("k8s:app=db", "k8s:io.kubernetes.pod.namespace=prod")

    func clusterAllocator() -> IdentityAllocator { IdentityAllocator(range: 256...65535, numbering: .cluster) }

    func testClusterNumberingNeverTakesANumberItself() throws {
        var allocator = clusterAllocator()
        let error = try XCTUnwrap(agentError { try allocator.acquire(web) })
        XCTAssertEqual(error.status, 503)
        XCTAssertTrue(allocator.learnedIdentities.isEmpty)
        // Reserved identities need no store.
        XCTAssertEqual(try allocator.acquire(labels("reserved:host")).id, 1)
    }

    func testLearnedIdentitiesAreListedAndAcquiredByTheirNumber() throws {
        var allocator = clusterAllocator()
        XCTAssertTrue(try allocator.learn(Identity(id: 4000, labels: web)))
        XCTAssertFalse(try allocator.learn(Identity(id: 4000, labels: web)))
        XCTAssertTrue(try allocator.learn(Identity(id: 300, labels: db)))
        XCTAssertEqual(allocator.identities.filter { $0.id >= 256 }.map(\.id), [300, 4000])
        XCTAssertEqual(allocator.identity(labels: web)?.id, 4000)
        XCTAssertEqual(allocator.references(4000), 0)
        // Pod-unique labels are filtered as for local identities.
        let held = try allocator.acquire(web.inserting(try Label(parsing: "k8s:pod-template-hash=abc")))
        XCTAssertEqual(held.id, 4000)
        XCTAssertEqual(allocator.references(4000), 1)
        XCTAssertEqual(try allocator.acquire(web).id, 4000)
        XCTAssertEqual(allocator.references(4000), 2)
        XCTAssertFalse(try allocator.release(4000))
        XCTAssertTrue(try allocator.release(4000))
        // Released on this node, still the cluster's: other nodes may hold it.
        XCTAssertEqual(allocator.identity(id: 4000)?.labels, web)
        XCTAssertEqual(try allocator.acquire(web).id, 4000)
    }

    func testForgettingLeavesLocallyHeldIdentitiesUntilReleased() throws {
        var allocator = clusterAllocator()
        try allocator.learn(Identity(id: 500, labels: web))
        _ = try allocator.acquire(web)
        XCTAssertEqual(allocator.forget(500)?.labels, web)
        XCTAssertNil(allocator.forget(500))
        XCTAssertEqual(allocator.identity(id: 500)?.labels, web, "held locally, so still known")
        XCTAssertTrue(try allocator.release(500))
        XCTAssertNil(allocator.identity(id: 500))
        XCTAssertNil(allocator.identity(labels: web))
        XCTAssertEqual(try XCTUnwrap(agentError { try allocator.acquire(web) }).status, 503)
    }

    func testConflictingClusterNumbersAreRefused() throws {
        var allocator = clusterAllocator()
        try allocator.learn(Identity(id: 500, labels: web))
        XCTAssertEqual(try XCTUnwrap(agentError { try allocator.learn(Identity(id: 500, labels: db)) }).status, 409)
        XCTAssertEqual(try XCTUnwrap(agentError { try allocator.learn(Identity(id: 501, labels: web)) }).status, 409)
        XCTAssertEqual(try XCTUnwrap(agentError { try allocator.learn(Identity(id: 70000, labels: db)) }).status, 400)
        XCTAssertEqual(
            try XCTUnwrap(agentError { try allocator.restore(identity: 500, labels: db) }).status, 409,
            "a restored number must match the cluster's labels")
        XCTAssertEqual(allocator.learnedIdentities.map(\.id), [500])
    }

    /// The store's list after this node missed a release and a new allocation: the store's pair replaces the one
    /// learned before, by number and by labels, unless an endpoint of this node holds it.
    func testTheStoresNumberingReplacesWhatWasLearnedBeforeUnlessHeldHere() throws {
        var allocator = clusterAllocator()
        try allocator.learn(Identity(id: 500, labels: web))
        try allocator.learn(Identity(id: 501, labels: db))
        let admin = labels("k8s:role=admin", "k8s:io.kubernetes.pod.namespace=prod")

        // 500 went from web to admin.
        let renumbered = try allocator.learnFromStore(Identity(id: 500, labels: admin))
        XCTAssertTrue(renumbered.learned)
        XCTAssertEqual(renumbered.replaced, [Identity(id: 500, labels: web)])
        XCTAssertEqual(allocator.identity(id: 500)?.labels, admin)
        XCTAssertNil(allocator.identity(labels: web))
        // db's labels now have 502; 501 is gone with them.
        let moved = try allocator.learnFromStore(Identity(id: 502, labels: db))
        XCTAssertEqual(moved.replaced, [Identity(id: 501, labels: db)])
        XCTAssertEqual(allocator.learnedIdentities.map(\.id), [500, 502])
        // The same pair again changes nothing.
        let again = try allocator.learnFromStore(Identity(id: 502, labels: db))
        XCTAssertFalse(again.learned)
        XCTAssertEqual(again.replaced, [])

        // Held by an endpoint here: still a conflict, and nothing is forgotten.
        _ = try allocator.acquire(admin)
        XCTAssertEqual(
            try XCTUnwrap(agentError { try allocator.learnFromStore(Identity(id: 500, labels: web)) }).status, 409)
        XCTAssertEqual(allocator.identity(id: 500)?.labels, admin)
    }
}
