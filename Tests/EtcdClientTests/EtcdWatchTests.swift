import AgentAPI
import EtcdClient
import Synchronization
import XCTest

/// What a watch delivered, for the test thread to wait on.
final class WatchRecorder: Sendable {
    private let state = Mutex<(events: [EtcdEvent], revisions: [Int64], failures: [EtcdWatchFailure])>(([], [], []))

    var events: [EtcdEvent] { state.withLock { $0.events } }
    var revisions: [Int64] { state.withLock { $0.revisions } }
    var failures: [EtcdWatchFailure] { state.withLock { $0.failures } }

    func watch(_ client: EtcdClient, prefix: String, from revision: Int64, prevKV: Bool = false) -> EtcdWatch {
        client.watch(
            prefix: prefix, fromRevision: revision, prevKV: prevKV,
            onEvents: { events, revision in
                self.state.withLock {
                    $0.events += events
                    $0.revisions.append(revision)
                }
            },
            onError: { failure in self.state.withLock { $0.failures.append(failure) } })
    }

    /// Waits up to `seconds` for `condition`; true when it held.
    func wait(seconds: Double = 5, until condition: (WatchRecorder) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(self) { return true }
            usleep(20_000)
        }
        return condition(self)
    }
}

final class EtcdWatchTests: EtcdTestCase {
    func testWatchSeesPutsAndDeletesInOrder() throws {
        try client.put(prefix.dropLast() + "-outside", "not watched")
        let start = try client.range(prefix: prefix).revision + 1
        let recorder = WatchRecorder()
        let watch = recorder.watch(client, prefix: prefix, from: start, prevKV: true)
        defer { watch.cancel() }
        try client.put(prefix + "a", "1")
        try client.put(prefix + "b", "2")
        try client.put(prefix + "a", "3")
        try client.delete(prefix + "a")
        try client.put(prefix.dropLast() + "-outside", "still not watched")

        XCTAssertTrue(recorder.wait { $0.events.count >= 4 }, "events: \(recorder.events)")
        let events = recorder.events
        XCTAssertEqual(events.map(\.type), [.put, .put, .put, .delete])
        XCTAssertEqual(events.map(\.kv.key), [prefix + "a", prefix + "b", prefix + "a", prefix + "a"])
        XCTAssertEqual(events.prefix(3).map(\.kv.valueString), ["1", "2", "3"])
        XCTAssertEqual(events.map(\.kv.modRevision), Array(start..<start + 4))
        XCTAssertNil(events[0].prevKV)
        XCTAssertEqual(events[2].prevKV?.valueString, "1")
        XCTAssertEqual(events[3].prevKV?.valueString, "3")
        // A batch carries the store's revision when it was sent, which may already be past its events.
        XCTAssertGreaterThanOrEqual(recorder.revisions.last ?? 0, start + 3)
        XCTAssertEqual(recorder.failures, [])
    }

    func testWatchFromAPastRevisionReplaysHistory() throws {
        let first = try client.put(prefix + "x", "1")
        try client.put(prefix + "y", "2")
        try client.delete(prefix + "x")
        let recorder = WatchRecorder()
        let watch = recorder.watch(client, prefix: prefix, from: first)
        defer { watch.cancel() }
        XCTAssertTrue(recorder.wait { $0.events.count >= 3 }, "events: \(recorder.events)")
        XCTAssertEqual(recorder.events.map(\.type), [.put, .put, .delete])
        XCTAssertEqual(recorder.events.map(\.kv.key), [prefix + "x", prefix + "y", prefix + "x"])
        XCTAssertEqual(recorder.events.map(\.kv.modRevision), [first, first + 1, first + 2])
    }

    func testWatchFromACompactedRevisionReportsCompaction() throws {
        let first = try client.put(prefix + "x", "1")
        let last = try client.put(prefix + "x", "2")
        try client.compact(last)
        let recorder = WatchRecorder()
        let watch = recorder.watch(client, prefix: prefix, from: first)
        defer { watch.cancel() }
        XCTAssertTrue(recorder.wait { !$0.failures.isEmpty })
        XCTAssertEqual(recorder.failures, [.compacted(compactRevision: last)])
        XCTAssertEqual(recorder.events, [])
    }

    func testCancelEndsTheWatchWithinOneSecond() throws {
        let start = try client.range(prefix: prefix).revision + 1
        let recorder = WatchRecorder()
        let watch = recorder.watch(client, prefix: prefix, from: start)
        try client.put(prefix + "a", "1")
        XCTAssertTrue(recorder.wait { $0.events.count == 1 }, "the watch never delivered")

        let began = ContinuousClock.now
        watch.cancel()
        let took = ContinuousClock.now - began
        XCTAssertLessThan(took, .seconds(1))
        try client.put(prefix + "a", "2")
        XCTAssertFalse(recorder.wait(seconds: 0.5) { $0.events.count > 1 }, "events after cancel: \(recorder.events)")
        XCTAssertEqual(recorder.failures, [], "a cancelled watch reports no failure")
        watch.cancel()
    }

    /// A handler may end its own watch: `cancel()` on the watch thread returns at once, and no more events come.
    func testCancelFromTheEventHandler() throws {
        let start = try client.range(prefix: prefix).revision + 1
        let delivered = Mutex<(watch: EtcdWatch?, batches: Int)>((nil, 0))
        let watch = client.watch(
            prefix: prefix, fromRevision: start,
            onEvents: { _, _ in
                let watch = delivered.withLock { state -> EtcdWatch? in
                    state.batches += 1
                    return state.watch
                }
                watch?.cancel()
            },
            onError: { failure in XCTFail("unexpected failure \(failure)") })
        delivered.withLock { $0.watch = watch }
        try client.put(prefix + "a", "1")
        let deadline = Date().addingTimeInterval(5)
        while delivered.withLock({ $0.batches }) == 0, Date() < deadline { usleep(20_000) }
        XCTAssertEqual(delivered.withLock { $0.batches }, 1)
        try client.put(prefix + "a", "2")
        usleep(300_000)
        XCTAssertEqual(delivered.withLock { $0.batches }, 1, "events after the handler cancelled")
        watch.cancel()
    }

    func testABrokenStreamIsReported() throws {
        let start = try client.range(prefix: prefix).revision + 1
        let recorder = WatchRecorder()
        let watch = recorder.watch(client, prefix: prefix, from: start)
        defer { watch.cancel() }
        try client.put(prefix + "a", "1")
        XCTAssertTrue(recorder.wait { $0.events.count == 1 }, "the watch never delivered")
        server.stop()
        XCTAssertTrue(recorder.wait { !$0.failures.isEmpty }, "no failure after etcd stopped")
        guard case .broken(let error) = recorder.failures.first else {
            return XCTFail("\(recorder.failures)")
        }
        XCTAssertEqual(error.status, 503)
        XCTAssertTrue(error.message.contains("etcd"), error.message)
    }
}
