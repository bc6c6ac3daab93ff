import DatapathCore
import Synchronization

/// What the flow reader does with each batch of ring-buffer records: decodes them, sets aside malformed records
/// and the self-test's, turns the rest into flows with the agent's current knowledge, stores them, and hands them
/// to `decided`. Apart from the ring so that the per-flow work can be measured and tested without a kernel.
final class FlowIngest: Sendable {
    private let store: FlowStore
    private let context: @Sendable () -> FlowContext?
    private let decided: @Sendable ([Flow]) -> Void
    private let malformed = Atomic<UInt64>(0)
    private let ownEvents = Atomic<UInt64>(0)

    /// `context` gives the agent's current knowledge (nil once the agent is gone); it is asked once per batch.
    /// `decided` sees every batch of flows once they are stored (the agent closes refused HTTP connections).
    init(
        store: FlowStore, context: @escaping @Sendable () -> FlowContext?,
        decided: @escaping @Sendable ([Flow]) -> Void = { _ in }
    ) {
        self.store = store
        self.context = context
        self.decided = decided
    }

    /// Takes one batch of records, in ring order.
    func ingest(_ records: [[UInt8]]) {
        var events: [FlowRecord] = []
        events.reserveCapacity(records.count)
        for record in records {
            guard let event = FlowRecord(record) else {
                malformed.add(1, ordering: .relaxed)
                continue
            }
            // The L7 self-test's requests are the agent's own, not traffic anyone asked about.
            guard event.event.ep_id != L7SelfTest.endpointID else {
                ownEvents.add(1, ordering: .relaxed)
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

    /// Records too short for what their kind announces (an ABI mismatch).
    var malformedRecords: UInt64 { malformed.load(ordering: .relaxed) }
    /// Events of the agent's own start-up self-test: read and decoded, never stored.
    var selfTestEvents: UInt64 { ownEvents.load(ordering: .relaxed) }
}
