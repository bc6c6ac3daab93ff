import AgentAPI
import EtcdClient
import Policy
import Synchronization
import XCTest

@testable import Cluster

/// Cluster-wide identity numbers through compare-and-swap transactions in a real etcd.
final class ClusterIdentitiesTests: EtcdBackedTestCase {
    func labels(_ texts: String...) throws -> LabelSet { try LabelSet(parsing: texts) }

    func testAllocationIsStableAndStoredBothWays() throws {
        let store = ClusterIdentities(client: client, keys: ClusterKeys(cluster: clusterName))
        let web = try labels("k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop")
        let db = try labels("k8s:app=db", "k8s:io.kubernetes.pod.namespace=shop")
        let first = try store.allocate(web)
        XCTAssertEqual(first.id, 256)
        XCTAssertEqual(try store.allocate(web), first, "the same labels again get the same number")
        XCTAssertEqual(try store.allocate(db).id, 257)
        let keys = ClusterKeys(cluster: clusterName)
        let stored = try XCTUnwrap(try client.get(keys.identity(256)))
        XCTAssertEqual(store.decode(stored), first)
        XCTAssertEqual(try client.get(keys.identityLabels(web))?.valueString, "256")
        // A second client (another node) sees the same numbers.
        let other = ClusterIdentities(
            client: EtcdClient(endpoints: [server.clientURL]), keys: ClusterKeys(cluster: clusterName))
        XCTAssertEqual(try other.allocate(db).id, 257)
    }

    func testRacingNodesGetOneNumberPerLabelSet() throws {
        let keys = ClusterKeys(cluster: clusterName)
        let nodes = (0..<6).map { _ in
            ClusterIdentities(client: EtcdClient(endpoints: [server.clientURL]), keys: keys)
        }
        let sets = try (0..<10).map { try labels("k8s:app=svc\($0)") }
        let results = Mutex<[Int: [UInt32]]>([:])
        // Every node allocates every label set at once, in a different order.
        DispatchQueue.concurrentPerform(iterations: nodes.count) { node in
            for index in sets.indices.shuffled() {
                if let identity = try? nodes[node].allocate(sets[index]) {
                    results.withLock { $0[index, default: []].append(identity.id) }
                }
            }
        }
        let byLabels = results.withLock { $0 }
        for index in sets.indices {
            let numbers = byLabels[index] ?? []
            XCTAssertEqual(numbers.count, nodes.count, "every node got a number for set \(index)")
            XCTAssertEqual(Set(numbers).count, 1, "set \(index) got \(numbers)")
        }
        let distinct = Set(byLabels.values.compactMap { $0.first })
        XCTAssertEqual(distinct.count, sets.count, "no number shared by two label sets")
        XCTAssertEqual(try client.range(prefix: keys.identityNumbers).kvs.count, sets.count)
    }

    func testEtcdDownIsA503NamingEtcd() throws {
        let store = ClusterIdentities(
            client: EtcdClient(endpoints: [server.clientURL], requestTimeout: .seconds(1)),
            keys: ClusterKeys(cluster: clusterName))
        server.stop()
        let started = Date()
        do {
            _ = try store.allocate(try labels("k8s:app=web"))
            XCTFail("allocated without etcd")
        } catch let error as AgentError {
            XCTAssertEqual(error.status, 503)
            XCTAssertTrue(error.message.contains("etcd"), error.message)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 3, "bounded by the request timeout")
    }
}
