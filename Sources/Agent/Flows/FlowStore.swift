import Synchronization

/// The most recent flows, in a ring of fixed capacity, and the followers that get new flows pushed.
///
/// Each follower has its own bounded queue, filled (with the flows its filter takes) when flows are appended. A
/// follower that reads slower than flows arrive loses the oldest queued flows, never blocks the writer or other
/// followers, and is told how many it lost. All state is behind one lock held only for list operations.
public final class FlowStore: Sendable {
    public let capacity: Int
    /// Flows a follower's queue holds before the oldest are dropped.
    public let followerQueueLimit: Int
    private let state: Mutex<State>

    private struct State {
        /// Grows to `capacity`, then each new flow takes the oldest one's slot.
        var ring: [Flow] = []
        var next = 0  // slot the next flow goes to
        var appended: UInt64 = 0
        var followers: [UInt64: Follower] = [:]
        var nextFollower: UInt64 = 1
        var droppedForFollowers: UInt64 = 0
        var closed = false
    }

    fileprivate struct Follower {
        var filter: FlowFilter
        var queue: [Flow] = []
        var head = 0
        var dropped: UInt64 = 0

        var pending: Int { queue.count - head }
    }

    /// Counters for metrics.
    public struct Stats: Sendable, Equatable {
        /// Flows appended since start.
        public var appended: UInt64
        /// Flows in the ring now.
        public var buffered: Int
        public var followers: Int
        /// Flows that followers' queues dropped because the follower read too slowly.
        public var droppedForFollowers: UInt64
    }

    public init(capacity: Int, followerQueueLimit: Int = 1024) {
        precondition(capacity > 0 && followerQueueLimit > 0)
        self.capacity = capacity
        self.followerQueueLimit = followerQueueLimit
        var state = State()
        state.ring.reserveCapacity(capacity)
        self.state = Mutex(state)
    }

    /// Adds flows (oldest first), overwriting the oldest in the ring, and queues them for followers.
    ///
    /// Takes the flows over: once the ring is full each is swapped with the flow it overwrites, so storing one
    /// copies no strings or arrays, and the overwritten flows are freed after the lock is released.
    public func append(_ flows: consuming [Flow]) {
        guard !flows.isEmpty else { return }
        var flows = consume flows  // a closure cannot capture the parameter itself
        let limit = followerQueueLimit
        state.withLock { state in
            // Followers first: the swap below leaves the overwritten flows in `flows`.
            for id in Array(state.followers.keys) {
                var follower = state.followers.removeValue(forKey: id)!
                for flow in flows where follower.filter.matches(flow) {
                    follower.queue.append(flow)
                }
                let excess = follower.pending - limit
                if excess > 0 {
                    follower.head += excess
                    follower.dropped += UInt64(excess)
                    state.droppedForFollowers += UInt64(excess)
                }
                // Compact once the consumed prefix dominates, so the queue does not grow without bound.
                if follower.head > limit {
                    follower.queue.removeFirst(follower.head)
                    follower.head = 0
                }
                state.followers[id] = follower
            }
            for index in flows.indices {
                if state.ring.count < capacity {
                    state.ring.append(flows[index])
                } else {
                    swap(&state.ring[state.next], &flows[index])
                }
                state.next = state.next + 1 == capacity ? 0 : state.next + 1
            }
            state.appended += UInt64(flows.count)
        }
    }

    /// The last `last` flows that match `filter`, oldest first.
    public func recent(matching filter: FlowFilter, last: Int) -> [Flow] {
        state.withLock { state in Self.recent(state, filter: filter, last: last) }
    }

    /// Starts following: returns the last `history` matching flows (none when nil) and a subscription that gets every
    /// matching flow appended after them, with nothing lost or repeated in between.
    public func follow(matching filter: FlowFilter, history: Int?) -> (history: [Flow], subscription: FlowSubscription)
    {
        let (flows, id) = state.withLock { state in
            let flows = history.map { Self.recent(state, filter: filter, last: $0) } ?? []
            let id = state.nextFollower
            state.nextFollower += 1
            if !state.closed { state.followers[id] = Follower(filter: filter) }
            return (flows, id)
        }
        return (flows, FlowSubscription(store: self, id: id))
    }

    public var stats: Stats {
        state.withLock { state in
            Stats(
                appended: state.appended, buffered: state.ring.count, followers: state.followers.count,
                droppedForFollowers: state.droppedForFollowers)
        }
    }

    /// Ends every subscription (their `next` returns nil) and refuses new ones; appending still works.
    public func close() {
        state.withLock { state in
            state.closed = true
            state.followers.removeAll()
        }
    }

    fileprivate func take(_ id: UInt64, max: Int) -> FlowSubscription.Batch? {
        state.withLock { state in
            guard var follower = state.followers.removeValue(forKey: id) else { return nil }
            let n = min(max, follower.pending)
            let flows = Array(follower.queue[follower.head..<follower.head + n])
            follower.head += n
            if follower.head == follower.queue.count {
                follower.queue.removeAll(keepingCapacity: true)
                follower.head = 0
            }
            let dropped = follower.dropped
            follower.dropped = 0
            state.followers[id] = follower
            return FlowSubscription.Batch(flows: flows, dropped: dropped)
        }
    }

    fileprivate func unsubscribe(_ id: UInt64) {
        state.withLock { _ = $0.followers.removeValue(forKey: id) }
    }

    private static func recent(_ state: State, filter: FlowFilter, last: Int) -> [Flow] {
        var result: [Flow] = []
        var index = state.next
        for _ in 0..<state.ring.count {
            index = (index - 1 + state.ring.count) % state.ring.count
            let flow = state.ring[index]
            if filter.matches(flow) {
                result.append(flow)
                if result.count == last { break }
            }
        }
        return result.reversed()
    }
}

/// A follower's end of the store: drains its queue. Unsubscribes when released, so a follower whose client went
/// away (the server drops the stream, and with it this object) stops costing anything.
public final class FlowSubscription: Sendable {
    /// New flows, and how many were dropped before them because the follower fell behind.
    public struct Batch: Sendable, Equatable {
        public var flows: [Flow]
        public var dropped: UInt64
    }

    private let store: FlowStore
    private let id: UInt64

    fileprivate init(store: FlowStore, id: UInt64) {
        self.store = store
        self.id = id
    }

    deinit { store.unsubscribe(id) }

    /// Up to `max` queued flows (possibly none); nil once the store is closed.
    public func next(max: Int = 256) -> Batch? {
        store.take(id, max: max)
    }
}
