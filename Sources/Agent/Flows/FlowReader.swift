import DatapathCore
import Logging
import Synchronization

/// Reads the datapath's flow events from the `na_events` ring buffer, turns them into `Flow`s with what the agent
/// knows at that moment, and appends them to the flow store.
final class FlowReader: Sendable {
    static let ringBuffer = "na_events"

    private let reader: RingBufferReader
    private let counter: EventCounter
    private let ownEvents: EventCounter

    /// `context` gives the agent's current knowledge (nil once the agent is gone); it is asked once per batch.
    /// `decided` sees every batch of flows once they are stored (the agent closes refused HTTP connections).
    init(
        datapath: Datapath, store: FlowStore, context: @escaping @Sendable () -> FlowContext?,
        decided: @escaping @Sendable ([Flow]) -> Void = { _ in }
    ) throws {
        let counter = EventCounter()
        let ownEvents = EventCounter()
        reader = RingBufferReader(map: try datapath.map(Self.ringBuffer), threadName: "flow-reader") { records in
            var events: [FlowRecord] = []
            events.reserveCapacity(records.count)
            for record in records {
                guard let event = FlowRecord(record) else {
                    counter.add(1)
                    continue
                }
                // The L7 self-test's requests are the agent's own, not traffic anyone asked about.
                guard event.event.ep_id != L7SelfTest.endpointID else {
                    ownEvents.add(1)
                    continue
                }
                events.append(event)
            }
            guard !events.isEmpty, let context = context() else { return }
            let offset = WallClock.monotonicOffset()
            let flows = events.map { record in
                var flow = context.flow(from: record.event, wallOffset: offset)
                flow.l7 = record.l7
                return flow
            }
            store.append(flows)
            decided(flows)
        }
        self.counter = counter
        self.ownEvents = ownEvents
    }

    func start() throws { try reader.start() }

    func stop() { reader.stop() }

    /// Events read from the ring buffer, and records too short for what their kind announces (an ABI mismatch).
    var eventsRead: UInt64 { reader.recordsRead }
    var malformedRecords: UInt64 { counter.value }
    /// Events of the agent's own start-up self-test: read and decoded, never stored.
    var selfTestEvents: UInt64 { ownEvents.value }
}

/// Counts records the reader set aside; bumped by the reader thread, read by metrics.
private final class EventCounter: Sendable {
    private let count = Atomic<UInt64>(0)
    func add(_ n: UInt64) { count.add(n, ordering: .relaxed) }
    var value: UInt64 { count.load(ordering: .relaxed) }
}
