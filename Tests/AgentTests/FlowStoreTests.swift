import DatapathCore
import XCTest

@testable import Agent

final class FlowStoreTests: XCTestCase {
    /// Distinct flows: the time says which one it is.
    private func flows(_ range: Range<Int>, verdict: Flow.Verdict = .dropped) -> [Flow] {
        Self.flows(range, verdict: verdict)
    }

    private static func flows(_ range: Range<Int>, verdict: Flow.Verdict = .dropped) -> [Flow] {
        range.map { FlowFixtures.flow(verdict, reason: verdict == .dropped ? 133 : 0, time: Int64($0)) }
    }

    func testRingKeepsTheNewestCapacityFlowsOldestFirst() {
        let store = FlowStore(capacity: 4)
        store.append(flows(0..<3))
        XCTAssertEqual(store.recent(matching: FlowFilter(), last: 10).map(\.time), [0, 1, 2])
        store.append(flows(3..<7))
        XCTAssertEqual(store.recent(matching: FlowFilter(), last: 10).map(\.time), [3, 4, 5, 6])
        XCTAssertEqual(store.recent(matching: FlowFilter(), last: 2).map(\.time), [5, 6], "last N: the newest N")
        XCTAssertEqual(store.stats, FlowStore.Stats(appended: 7, buffered: 4, followers: 0, droppedForFollowers: 0))
    }

    func testBatchesLargerThanTheRingKeepTheirNewest() {
        let store = FlowStore(capacity: 3)
        store.append(flows(0..<8))
        XCTAssertEqual(store.recent(matching: FlowFilter(), last: 10).map(\.time), [5, 6, 7])
        let batch = flows(8..<10)
        store.append(batch)
        XCTAssertEqual(batch.map(\.time), [8, 9], "the caller's flows stay as they were")
        XCTAssertEqual(store.recent(matching: FlowFilter(), last: 10).map(\.time), [7, 8, 9])
        store.append(flows(10..<13))
        XCTAssertEqual(store.recent(matching: FlowFilter(), last: 10).map(\.time), [10, 11, 12])
        XCTAssertEqual(store.stats, FlowStore.Stats(appended: 13, buffered: 3, followers: 0, droppedForFollowers: 0))
    }

    func testRecentFiltersBeforeCounting() {
        let store = FlowStore(capacity: 10)
        store.append(flows(0..<3, verdict: .forwarded) + flows(3..<5) + flows(5..<6, verdict: .forwarded))
        var filter = FlowFilter()
        filter.verdict = .dropped
        XCTAssertEqual(store.recent(matching: filter, last: 1).map(\.time), [4], "the newest matching, not the newest")
        XCTAssertEqual(store.recent(matching: filter, last: 10).map(\.time), [3, 4])
    }

    func testFollowerGetsHistoryThenEveryNewMatchingFlowOnce() throws {
        let store = FlowStore(capacity: 10)
        store.append(flows(0..<3))
        var filter = FlowFilter()
        filter.verdict = .dropped
        let (history, subscription) = store.follow(matching: filter, history: 2)
        XCTAssertEqual(history.map(\.time), [1, 2])
        XCTAssertEqual(subscription.next(), FlowSubscription.Batch(flows: [], dropped: 0), "nothing new yet")
        store.append(flows(3..<5) + flows(5..<6, verdict: .forwarded) + flows(6..<7))
        XCTAssertEqual(
            try XCTUnwrap(subscription.next()).flows.map(\.time), [3, 4, 6], "the forwarded flow filtered out")
        XCTAssertEqual(subscription.next()?.flows, [], "drained")
        let (none, _) = store.follow(matching: FlowFilter(), history: nil)
        XCTAssertEqual(none, [], "no history unless asked")
    }

    func testSlowFollowerLosesTheOldestAndIsTold() throws {
        let store = FlowStore(capacity: 100, followerQueueLimit: 3)
        let (_, slow) = store.follow(matching: FlowFilter(), history: nil)
        store.append(flows(0..<5))
        store.append(flows(5..<7))
        let batch = try XCTUnwrap(slow.next(max: 10))
        XCTAssertEqual(batch.flows.map(\.time), [4, 5, 6], "the newest three kept")
        XCTAssertEqual(batch.dropped, 4)
        XCTAssertEqual(store.stats.droppedForFollowers, 4)
        XCTAssertEqual(slow.next()?.dropped, 0, "each loss is reported once")
        XCTAssertEqual(store.recent(matching: FlowFilter(), last: 100).count, 7, "the ring itself lost nothing")
    }

    func testNextHandsOutAtMostMax() throws {
        let store = FlowStore(capacity: 100)
        let (_, subscription) = store.follow(matching: FlowFilter(), history: nil)
        store.append(flows(0..<5))
        XCTAssertEqual(try XCTUnwrap(subscription.next(max: 2)).flows.map(\.time), [0, 1])
        XCTAssertEqual(try XCTUnwrap(subscription.next(max: 2)).flows.map(\.time), [2, 3])
        XCTAssertEqual(try XCTUnwrap(subscription.next(max: 2)).flows.map(\.time), [4])
    }

    func testReleasingASubscriptionUnsubscribes() {
        let store = FlowStore(capacity: 10)
        var subscription: FlowSubscription? = store.follow(matching: FlowFilter(), history: nil).subscription
        XCTAssertEqual(store.stats.followers, 1)
        XCTAssertNotNil(subscription)
        subscription = nil
        XCTAssertEqual(store.stats.followers, 0)
        store.append(flows(0..<3))  // nobody to queue for
        XCTAssertEqual(store.stats.droppedForFollowers, 0)
    }

    func testCloseEndsFollowers() {
        let store = FlowStore(capacity: 10)
        let (_, subscription) = store.follow(matching: FlowFilter(), history: nil)
        store.close()
        XCTAssertNil(subscription.next())
        XCTAssertNil(store.follow(matching: FlowFilter(), history: nil).subscription.next(), "no new followers")
        store.append(flows(0..<1))
        XCTAssertEqual(store.recent(matching: FlowFilter(), last: 5).count, 1, "the ring still records")
    }

    func testConcurrentAppendAndFollowLoseNothing() {
        let store = FlowStore(capacity: 10_000, followerQueueLimit: 100_000)
        let (_, subscription) = store.follow(matching: FlowFilter(), history: nil)
        let writers = 4
        let perWriter = 500
        DispatchQueue.concurrentPerform(iterations: writers) { writer in
            for i in 0..<perWriter { store.append(Self.flows(writer * perWriter + i..<writer * perWriter + i + 1)) }
        }
        var seen: [Int64] = []
        while let batch = subscription.next(max: 300), !batch.flows.isEmpty { seen += batch.flows.map(\.time) }
        XCTAssertEqual(Set(seen).count, writers * perWriter)
        XCTAssertEqual(seen.count, writers * perWriter)
    }
}
