import AgentAPI
import EtcdClient
import Policy
import Synchronization
import XCTest

@testable import Cluster

/// The cluster's policy documents and revision in a real etcd.
final class ClusterPoliciesTests: EtcdBackedTestCase {
    func testPolicyKeysNameTheirDocument() {
        let keys = ClusterKeys(cluster: clusterName)
        let keysOfEveryKind = [
            PolicyKey(namespace: "web-tier", name: "allow"), PolicyKey(namespace: nil, name: "deny-world"),
            PolicyKey(namespace: "web-tier", name: "allow", isNetworkPolicy: true),
        ]
        XCTAssertEqual(Set(keysOfEveryKind.map(keys.policy)).count, 3, "a NetworkPolicy has a key of its own")
        for key in keysOfEveryKind {
            XCTAssertEqual(keys.policyKey(inKey: keys.policy(key)), key, keys.policy(key))
        }
        XCTAssertNil(keys.policyKey(inKey: keys.policyRevision))
        XCTAssertNil(keys.policyKey(inKey: keys.policies + "namespaced/web-tier"))
        XCTAssertNil(keys.policyKey(inKey: keys.policies + "namespaced/web-tier/"))
        XCTAssertNil(keys.policyKey(inKey: keys.nodes + "a"))
    }

    func testRacingWritersGetOneRevisionEachAndLoseNothing() throws {
        let keys = ClusterKeys(cluster: clusterName)
        let writers = (0..<4).map { _ in
            ClusterPolicies(client: EtcdClient(endpoints: [server.clientURL]), keys: keys)
        }
        let revisions = Mutex<[UInt64]>([])
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: writers.count) { writer in
            for change in 0..<5 {
                let key = PolicyKey(namespace: "ns", name: "p\(writer)-\(change)")
                do {
                    let written = try writers[writer].change(by: "node\(writer)") { _ in
                        ClusterPolicies.Plan(puts: [key: Array(#"{"n":\#(change)}"#.utf8)])
                    }
                    if let written { revisions.withLock { $0.append(written.revision) } }
                } catch {
                    failures.withLock { $0.append("\(key): \(error)") }
                }
            }
        }
        XCTAssertEqual(failures.withLock { $0 }, [])
        XCTAssertEqual(revisions.withLock { $0 }.sorted(), Array(2...21), "one revision per change, none shared")
        let contents = writers[0].contents(try client.range(prefix: keys.policies).kvs)
        XCTAssertEqual(contents.revision, 21)
        XCTAssertEqual(contents.documents.count, 20, "no change lost another's document")
    }

    func testAPlanThatThrowsOrHasNothingWritesNothing() throws {
        let keys = ClusterKeys(cluster: clusterName)
        let policies = ClusterPolicies(client: client, keys: keys)
        XCTAssertThrowsError(
            try policies.change(by: "n1") { _ throws(AgentError) in throw AgentError.notFound("policy x not found") })
        XCTAssertNil(try policies.change(by: "n1") { _ in nil })
        XCTAssertEqual(try client.range(prefix: keys.policies).kvs, [], "nothing in etcd")
        XCTAssertEqual(policies.contents([]).revision, 1, "an empty repository's revision")
    }

    func testAMirrorHandsOverOneTransactionInOneBatch() throws {
        let keys = ClusterKeys(cluster: clusterName)
        let policies = ClusterPolicies(client: client, keys: keys)
        let batches = Mutex<[[PrefixMirror.Change]]>([])
        let mirror = PrefixMirror(
            client: client, prefix: keys.policies, logger: logger,
            batchHandler: { changes, _ in batches.withLock { $0.append(changes) } })
        mirror.start()
        defer { mirror.stop() }
        try eventually("the first list") { mirror.isSynced }
        let documents = (0..<3).map { PolicyKey(namespace: "ns", name: "p\($0)") }
        let written = try XCTUnwrap(
            try policies.change(by: "n1") { _ in
                ClusterPolicies.Plan(puts: Dictionary(uniqueKeysWithValues: documents.map { ($0, Array("{}".utf8)) }))
            })
        try eventually("the transaction's events") { mirror.revision >= written.etcdRevision }
        let last = try XCTUnwrap(batches.withLock { $0.last })
        let putKeys = last.compactMap { change -> String? in
            if case .put(let kv) = change { return kv.key }
            return nil
        }
        XCTAssertEqual(Set(putKeys), Set(documents.map(keys.policy) + [keys.policyRevision]), "one batch: \(last)")
    }
}
