import AgentAPI
import EtcdClient
import EtcdTestSupport
import Synchronization
import XCTest

@testable import Cluster

/// List-then-watch of a prefix, against a real etcd, through etcd going away and coming back.
final class PrefixMirrorTests: EtcdBackedTestCase {
    /// A consumer that applies changes to a dictionary, as the agent's handlers do.
    final class Copy: Sendable {
        let values = Mutex<[String: String]>([:])
        let snapshots = Mutex(0)

        func apply(_ change: PrefixMirror.Change) {
            switch change {
            case .snapshot(let kvs, _):
                snapshots.withLock { $0 += 1 }
                values.withLock { values in
                    values = [:]
                    for kv in kvs { values[kv.key] = kv.valueString }
                }
            case .put(let kv): values.withLock { $0[kv.key] = kv.valueString }
            case .delete(let key): values.withLock { $0[key] = nil }
            }
        }

        var current: [String: String] { values.withLock { $0 } }
    }

    func testListThenWatchKeepsACopyInStep() throws {
        let prefix = "/\(clusterName)/items/"
        _ = try client.put(prefix + "a", "1")
        _ = try client.put("/\(clusterName)/other", "not mine")
        let copy = Copy()
        let mirror = PrefixMirror(client: client, prefix: prefix, logger: logger) { copy.apply($0) }
        mirror.start()
        defer { mirror.stop() }
        try eventually("listed") { copy.current == [prefix + "a": "1"] && mirror.isSynced }
        _ = try client.put(prefix + "b", "2")
        _ = try client.put(prefix + "a", "3")
        _ = try client.delete(prefix + "b")
        try eventually("changes applied") { copy.current == [prefix + "a": "3"] }
        XCTAssertEqual(copy.snapshots.withLock { $0 }, 1, "one list, then the watch")
    }

    func testAnEtcdRestartIsBridgedByListingAgain() throws {
        let prefix = "/\(clusterName)/items/"
        _ = try client.put(prefix + "kept", "1")
        _ = try client.put(prefix + "gone", "1")
        let copy = Copy()
        let mirror = PrefixMirror(
            client: client, prefix: prefix, retryDelay: .milliseconds(100), logger: logger
        ) { copy.apply($0) }
        mirror.start()
        defer { mirror.stop() }
        try eventually("listed") { copy.current.count == 2 }
        let url = server.clientURL
        server.stop()
        try eventually("the broken watch noticed") { !mirror.isSynced }
        XCTAssertEqual(copy.current.count, 2, "the copy keeps what it had while etcd is away")
        // etcd comes back empty but for one key: the copy converges, the key deleted meanwhile included.
        server = try EtcdServer(clientURL: url)
        _ = try client.put(prefix + "kept", "2")
        try eventually("converged", timeout: 10) { copy.current == [prefix + "kept": "2"] && mirror.isSynced }
        XCTAssertGreaterThan(mirror.failures, 0)
    }

    func testStopEndsTheWatchPromptly() throws {
        let mirror = PrefixMirror(client: client, prefix: "/\(clusterName)/", logger: logger) { _ in }
        mirror.start()
        try eventually("listed") { mirror.isSynced }
        let started = Date()
        mirror.stop()
        XCTAssertLessThan(Date().timeIntervalSince(started), 1)
    }
}
