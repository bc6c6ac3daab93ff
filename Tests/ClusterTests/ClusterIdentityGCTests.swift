import AgentAPI
import EtcdClient
import Foundation
import Policy
import Synchronization
import XCTest

@testable import Cluster

/// Releasing identities no node references, after a grace period, against a real etcd.
final class ClusterIdentityGCTests: EtcdBackedTestCase {
    var keys: ClusterKeys { ClusterKeys(cluster: clusterName) }

    func labels(_ texts: String...) throws -> LabelSet { try LabelSet(parsing: texts) }

    /// The release transaction rests on etcd's semantics of a compare over a range: `createRevision == 0` holds
    /// when no key is in the range, fails as soon as one is, and a key merely sharing the text prefix of the number
    /// (`refs/2560/...` for `refs/256/`) is outside it. A value compare on a missing key fails.
    func testCompareOverARangeHoldsExactlyWhenItIsEmpty() throws {
        let empty = EtcdCompare(prefix: keys.identityReferences(256), .createRevision(0))
        func holds(_ compare: EtcdCompare) throws -> Bool {
            try client.txn(compare: [compare], success: [], failure: []).succeeded
        }
        XCTAssertTrue(try holds(empty))
        _ = try client.put(keys.identityReference(2560, node: "n1"), "")
        XCTAssertTrue(try holds(empty), "refs/2560/ is not under refs/256/")
        _ = try client.put(keys.identityReference(256, node: "n1"), "")
        _ = try client.put(keys.identityReference(256, node: "n2"), "")
        XCTAssertFalse(try holds(empty))
        _ = try client.delete(keys.identityReference(256, node: "n1"))
        XCTAssertFalse(try holds(empty), "one reference left")
        _ = try client.delete(keys.identityReference(256, node: "n2"))
        XCTAssertTrue(try holds(empty))
        XCTAssertFalse(try holds(EtcdCompare(key: keys.identity(256), .value([]))))
    }

    func testAnUnreferencedNumberKeepsItsLabelsForTheGracePeriodThenIsReleasedAndReused() throws {
        let store = ClusterIdentities(client: client, keys: keys)
        let web = try labels("k8s:app=web")
        let db = try labels("k8s:app=db")
        let batch = try labels("k8s:app=batch")
        let grace = Duration.milliseconds(800)
        var gc = ClusterIdentityGC(client: client, keys: keys, grace: grace)
        let a = try store.allocate(web)
        XCTAssertEqual(a.id, 256)
        let lease = try client.grant(ttl: 5)
        _ = try client.put(keys.identityReference(a.id, node: "n1"), [], lease: lease.id)
        XCTAssertEqual(try gc.collect(), [])
        XCTAssertEqual(gc.pending, [], "a referenced identity is not a candidate")

        // The node goes away: its lease and its reference with it.
        try client.revoke(lease.id)
        let start = ContinuousClock.now
        XCTAssertEqual(try gc.collect(), [])
        XCTAssertEqual(gc.pending, [a.id])
        Thread.sleep(forTimeInterval: 0.4)
        // Within the grace period the number still names web's labels: web gets it back, db gets another.
        XCTAssertEqual(try store.allocate(db).id, 257)
        XCTAssertEqual(try store.allocate(web), a)
        XCTAssertEqual(try gc.collect(), [])
        XCTAssertEqual(gc.pending, [256, 257])
        XCTAssertLessThan(ContinuousClock.now - start, grace, "the checks above ran within the grace period")
        XCTAssertNotNil(try client.get(keys.identity(a.id)))

        Thread.sleep(until: Date() + (grace - (ContinuousClock.now - start)) / .seconds(1) + 0.05)
        XCTAssertEqual(Set(try gc.collect()), [256], "257 was first seen unreferenced later; its grace runs on")
        XCTAssertNil(try client.get(keys.identity(256)))
        XCTAssertNil(try client.get(keys.identityLabels(web)))
        XCTAssertNotNil(try client.get(keys.identity(257)))
        // Released: the number may now go to another label set, and web gets a number anew.
        XCTAssertEqual(try store.allocate(batch).id, 256)
        XCTAssertEqual(try store.allocate(web).id, 258)
    }

    func testAReferenceOrARewriteWithinTheGracePeriodKeepsTheIdentity() throws {
        let store = ClusterIdentities(client: client, keys: keys)
        let web = try store.allocate(try labels("k8s:app=web"))
        let db = try store.allocate(try labels("k8s:app=db"))
        var gc = ClusterIdentityGC(client: client, keys: keys, grace: .milliseconds(300))
        try gc.collect()
        XCTAssertEqual(gc.pending, [web.id, db.id])
        _ = try client.put(keys.identityReference(web.id, node: "n2"), "")
        // db's key written again (as a restore does): its grace period starts over.
        _ = try client.put(keys.identity(db.id), ClusterIdentities.value(db.labels).serialized())
        Thread.sleep(forTimeInterval: 0.4)
        XCTAssertEqual(try gc.collect(), [])
        XCTAssertEqual(gc.pending, [db.id])
        Thread.sleep(forTimeInterval: 0.4)
        XCTAssertEqual(try gc.collect(), [db.id])
        XCTAssertNotNil(try client.get(keys.identity(web.id)), "still referenced")
    }

    /// Nodes running collectors at once release each number once, and never one with a reference.
    func testCollectorsOnEveryNodeAgree() throws {
        let store = ClusterIdentities(client: client, keys: keys)
        let identities = try (0..<12).map { try store.allocate(try labels("k8s:app=svc\($0)")) }
        for identity in identities where identity.id % 2 == 0 {
            _ = try client.put(keys.identityReference(identity.id, node: "n\(identity.id)"), "")
        }
        var collectors = (0..<4).map { _ in
            ClusterIdentityGC(
                client: EtcdClient(endpoints: [server.clientURL]), keys: keys, grace: .milliseconds(200))
        }
        for index in collectors.indices { try collectors[index].collect() }
        Thread.sleep(forTimeInterval: 0.3)
        let released = Mutex<[UInt32]>([])
        let primed = collectors
        DispatchQueue.concurrentPerform(iterations: primed.count) { index in
            var collector = primed[index]
            let numbers = (try? collector.collect()) ?? []
            released.withLock { $0 += numbers }
        }
        let all = released.withLock { $0 }
        XCTAssertEqual(all.sorted(), identities.map(\.id).filter { $0 % 2 == 1 }, "each odd number released once")
        let left = try client.range(prefix: keys.identityNumbers).kvs.compactMap { keys.identityNumber(inKey: $0.key) }
        XCTAssertEqual(left.sorted(), identities.map(\.id).filter { $0 % 2 == 0 })
        XCTAssertEqual(try client.range(prefix: keys.identityLabelIndex).kvs.count, left.count)
    }

    /// A node's reference written after the release is refused (not written), the node restores the number for
    /// its labels, and the reference is then written; had the number gone to other labels, restoring fails.
    func testAReferenceAfterTheReleaseIsRefusedAndTheNumberRestored() throws {
        let store = ClusterIdentities(client: client, keys: keys)
        let web = try store.allocate(try labels("k8s:app=web"))
        var gc = ClusterIdentityGC(client: client, keys: keys, grace: .zero)
        try gc.collect()
        XCTAssertEqual(try gc.collect(), [web.id])

        let session = ClusterSession(client: client, ttlSeconds: 5, logger: logger)
        let refused = Mutex<[String]>([])
        session.onRefused { key in refused.withLock { $0.append(key) } }
        session.start()
        defer { session.stop() }
        let reference = keys.identityReference(web.id, node: "n1")
        session.own(reference, [], onlyIf: ClusterIdentityGC.referenceCondition(web, keys: keys))
        try eventually("the reference refused") { refused.withLock { $0 } == [reference] }
        XCTAssertNil(try client.get(reference), "no reference to a released number")
        XCTAssertFalse(session.isInSync)

        XCTAssertTrue(try store.restore(web))
        XCTAssertTrue(try store.restore(web), "restoring what is there already holds")
        session.retry(reference)
        try eventually("the reference written") { try client.get(reference) != nil }
        XCTAssertEqual(try store.allocate(web.labels), web)

        // Released again, and the number taken by other labels: the reference is refused, restoring fails.
        session.disown(reference)
        try eventually("the reference withdrawn") { try client.get(reference) == nil }
        try gc.collect()
        XCTAssertEqual(try gc.collect(), [web.id])
        let batch = try store.allocate(try labels("k8s:app=batch"))
        XCTAssertEqual(batch.id, web.id)
        session.own(reference, [], onlyIf: ClusterIdentityGC.referenceCondition(web, keys: keys))
        try eventually("refused again") { refused.withLock { $0.count } == 2 }
        XCTAssertNil(try client.get(reference))
        XCTAssertFalse(try store.restore(web))
    }

    /// A node taking and dropping references while collectors with no grace run flat out: whatever the
    /// interleaving, no reference is left on a number that is gone or names other labels.
    func testReferencesRacingWithCollectorsNeverOutliveTheirIdentity() throws {
        let store = ClusterIdentities(client: client, keys: keys)
        let sets = try (0..<6).map { try labels("k8s:app=race\($0)") }
        let session = ClusterSession(client: client, ttlSeconds: 5, logger: logger)
        let refused = Mutex(0)
        session.onRefused { _ in refused.withLock { $0 += 1 } }
        session.start()
        defer { session.stop() }
        let stop = Atomic(false)
        let releases = Atomic(0)
        let collectors = DispatchGroup()
        for _ in 0..<2 {
            let client = EtcdClient(endpoints: [server.clientURL])
            let keys = keys
            DispatchQueue.global().async(group: collectors) {
                var gc = ClusterIdentityGC(client: client, keys: keys, grace: .zero)
                while !stop.load(ordering: .relaxed) {
                    if let released = try? gc.collect() { releases.add(released.count, ordering: .relaxed) }
                }
            }
        }
        var held: [String: Identity] = [:]
        let deadline = Date() + 3
        while Date() < deadline {
            let identity = try store.allocate(sets.randomElement()!)
            let reference = keys.identityReference(identity.id, node: "n1")
            if held[reference] != nil, Bool.random() {
                session.disown(reference)
                held[reference] = nil
            } else {
                session.own(reference, [], onlyIf: ClusterIdentityGC.referenceCondition(identity, keys: keys))
                held[reference] = identity
            }
            usleep(UInt32.random(in: 0...3000))
        }
        stop.store(true, ordering: .relaxed)
        collectors.wait()
        Thread.sleep(forTimeInterval: 0.5)  // the session's last writes
        XCTAssertGreaterThan(releases.load(ordering: .relaxed), 0, "the collectors released numbers meanwhile")
        for kv in try client.range(prefix: keys.identityReferences).kvs {
            let id = try XCTUnwrap(keys.identityNumber(inReferenceKey: kv.key))
            let stored = try XCTUnwrap(try client.get(keys.identity(id)), "reference \(kv.key) outlived its identity")
            XCTAssertEqual(store.decode(stored), held[kv.key], "reference \(kv.key) is on the labels it was taken for")
        }
    }
}
