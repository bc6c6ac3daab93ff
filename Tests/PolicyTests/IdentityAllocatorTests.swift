import AgentAPI
import XCTest

@testable import Policy

final class IdentityAllocatorTests: XCTestCase {
    let web = labels("k8s:app=web", "k8s:io.kubernetes.pod.namespace=prod")
    let db = labels("k8s:app=db", "k8s:io.kubernetes.pod.namespace=prod")
    let cache = labels("k8s:app=cache", "k8s:io.kubernetes.pod.namespace=prod")

    func testReservedIdentitiesAreFixedAndListed() throws {
        var allocator = IdentityAllocator()
        let expected: [(UInt32, String)] = [
            (1, "reserved:host"), (2, "reserved:world"), (3, "reserved:unmanaged"), (4, "reserved:health"),
            (5, "reserved:init"), (6, "reserved:remote-node"), (7, "reserved:kube-apiserver"), (8, "reserved:ingress"),
            (9, "reserved:world-ipv4"), (10, "reserved:world-ipv6"),
        ]
        let listed = allocator.identities
        XCTAssertEqual(listed.map(\.id), expected.map(\.0))
        XCTAssertEqual(listed.map { $0.labels.strings }, expected.map { [$0.1] })
        XCTAssertEqual(try allocator.acquire(labels("reserved:host")).id, 1)
        XCTAssertEqual(try allocator.acquire(labels("reserved:health", "k8s:app=x")).id, 4)
        XCTAssertEqual(allocator.identity(labels: labels("reserved:world"))?.id, 2)
        XCTAssertEqual(allocator.identity(id: 7)?.labels, labels("reserved:kube-apiserver"))
        XCTAssertEqual(try allocator.release(1), false)
        XCTAssertNotNil(allocator.identity(id: 1))

        let unknown = try XCTUnwrap(agentError { try allocator.acquire(labels("reserved:bogus")) })
        XCTAssertTrue(unknown.message.contains("\"reserved:bogus\" is not a reserved identity"), unknown.message)
        XCTAssertNotNil(agentError { try allocator.acquire(labels("reserved:host", "reserved:world")) })
    }

    func testAllocationIsReferenceCountedAndStableWhileInUse() throws {
        var allocator = IdentityAllocator()
        let a = try allocator.acquire(web)
        XCTAssertEqual(a.id, 256)
        XCTAssertEqual(try allocator.acquire(db).id, 257)
        // Labels differing only in filtered keys share the identity.
        let again = try allocator.acquire(web.inserting(try Label(parsing: "k8s:pod-template-hash=abc")))
        XCTAssertEqual(again, a)
        XCTAssertEqual(allocator.references(256), 2)
        XCTAssertEqual(
            allocator.json(a),
            ["id": 256, "labels": ["k8s:app=web", "k8s:io.kubernetes.pod.namespace=prod"], "references": 2])
        XCTAssertEqual(try allocator.release(256), false)
        XCTAssertEqual(allocator.identity(id: 256)?.labels, web)
        XCTAssertEqual(allocator.identity(labels: web)?.id, 256)
        XCTAssertEqual(try allocator.release(256), true)
        XCTAssertNil(allocator.identity(id: 256))
        XCTAssertNil(allocator.identity(labels: web))
        XCTAssertEqual(allocator.references(256), 0)
        XCTAssertEqual(allocator.identities.map(\.id).filter { $0 >= 256 }, [257])
        let error = try XCTUnwrap(agentError { try allocator.release(256) })
        XCTAssertEqual(error.code, .notFound)
    }

    func testFreedNumbersAreNotReusedWhileFreshOnesRemain() throws {
        var allocator = IdentityAllocator()
        let a = try allocator.acquire(web)
        try allocator.release(a.id)
        // New labels do not get the number just freed.
        let b = try allocator.acquire(db)
        XCTAssertEqual(b.id, 257)
        // The freed label set gets its old number back.
        XCTAssertEqual(try allocator.acquire(web).id, 256)
        XCTAssertEqual(try allocator.acquire(cache).id, 258)
    }

    func testExhaustedRangeReusesOldestFreedFirst() throws {
        var allocator = IdentityAllocator(range: 256...258)
        let sets = (0..<4).map { labels("k8s:app=a\($0)") }
        XCTAssertEqual(try allocator.acquire(sets[0]).id, 256)
        XCTAssertEqual(try allocator.acquire(sets[1]).id, 257)
        XCTAssertEqual(try allocator.acquire(sets[2]).id, 258)
        XCTAssertEqual(try XCTUnwrap(agentError { try allocator.acquire(sets[3]) }).code, .capacity)
        try allocator.release(257)
        try allocator.release(256)
        // 257 was freed first, so it is reused first; 256 keeps remembering sets[0].
        XCTAssertEqual(try allocator.acquire(sets[3]).id, 257)
        XCTAssertEqual(try allocator.acquire(sets[0]).id, 256)
        XCTAssertEqual(try XCTUnwrap(agentError { try allocator.acquire(sets[1]) }).code, .capacity)
    }

    func testRestoreRecreatesNumbersAndRejectsConflicts() throws {
        var allocator = IdentityAllocator()
        XCTAssertEqual(try allocator.restore(identity: 300, labels: web).id, 300)
        XCTAssertEqual(try allocator.restore(identity: 300, labels: web).id, 300)
        XCTAssertEqual(allocator.references(300), 2)
        XCTAssertEqual(try allocator.acquire(web).id, 300)
        XCTAssertEqual(allocator.references(300), 3)
        // New label sets continue above the restored number.
        XCTAssertEqual(try allocator.acquire(db).id, 301)

        let taken = try XCTUnwrap(agentError { try allocator.restore(identity: 300, labels: cache) })
        XCTAssertEqual(taken.code, .conflict)
        XCTAssertTrue(taken.message.contains("already allocated"), taken.message)
        let moved = try XCTUnwrap(agentError { try allocator.restore(identity: 302, labels: web) })
        XCTAssertEqual(moved.code, .conflict)
        XCTAssertTrue(moved.message.contains("already have identity 300"), moved.message)
        XCTAssertEqual(try XCTUnwrap(agentError { try allocator.restore(identity: 2, labels: web) }).code, .conflict)
        XCTAssertEqual(try allocator.restore(identity: 2, labels: labels("reserved:world")).id, 2)
        XCTAssertEqual(
            try XCTUnwrap(agentError { try allocator.restore(identity: 100, labels: web) }).code, .invalidField)
        XCTAssertEqual(
            try XCTUnwrap(agentError { try allocator.restore(identity: 1 << 24, labels: cache) }).code, .invalidField)
    }

    func testGapsLeftByRestoreAreUsedOnlyWhenTheRangeIsExhausted() throws {
        var allocator = IdentityAllocator(range: 256...260)
        try allocator.restore(identity: 259, labels: web)
        XCTAssertEqual(try allocator.acquire(db).id, 260)
        XCTAssertEqual(try allocator.acquire(cache).id, 256)
        XCTAssertEqual(try allocator.acquire(labels("k8s:app=x")).id, 257)
    }
}
