import DatapathCore
import Synchronization

/// What the flow reader does with each batch of ring-buffer records: decodes them, sets aside malformed records
/// and the self-test's, turns the rest into flows with the agent's current knowledge, stores them, and hands the
/// refused HTTP requests among them to `refused`. Apart from the ring so that the per-flow work can be measured and
/// tested without a kernel.
final class FlowIngest: Sendable {
    private let store: FlowStore
    private let context: @Sendable () -> FlowContext?
    private let refused: @Sendable ([Flow]) -> Void
    private let malformed = Atomic<UInt64>(0)
    private let ownEvents = Atomic<UInt64>(0)

    /// `context` gives the agent's current knowledge (nil once the agent is gone: records are then only counted);
    /// it is asked once per batch.
    /// `refused` gets the HTTP requests the kernel refused (verdict DROPPED with an `l7` part) of each batch that
    /// has any, once they are stored: the agent closes their connections.
    init(
        store: FlowStore, context: @escaping @Sendable () -> FlowContext?,
        refused: @escaping @Sendable ([Flow]) -> Void = { _ in }
    ) {
        self.store = store
        self.context = context
        self.refused = refused
    }

    /// Takes one batch of records, in ring order.
    func ingest(_ records: RingBufferRecords) {
        guard !records.isEmpty else { return }
        let context = context()
        let offset = WallClock.monotonicOffset()
        var flows: [Flow] = []
        flows.reserveCapacity(records.count)
        var refusedFlows: [Flow] = []
        var texts = L7Texts()
        records.forEachUnsafeRecord { bytes in
            guard var record = FlowRecord(bytes, texts: &texts) else {
                malformed.add(1, ordering: .relaxed)
                return
            }
            // The L7 self-test's requests are the agent's own, not traffic anyone asked about.
            guard record.event.ep_id != L7SelfTest.endpointID else {
                ownEvents.add(1, ordering: .relaxed)
                return
            }
            guard let context else { return }
            // Made in place in the array, so that the flow is not copied again.
            flows.append(context.flow(from: record.event, wallOffset: offset))
            let last = flows.count - 1
            flows[last].l7 = record.l7.take()
            if flows[last].l7 != nil, flows[last].verdict == .dropped { refusedFlows.append(flows[last]) }
        }
        store.append(consume flows)
        if !refusedFlows.isEmpty { refused(refusedFlows) }
    }

    /// Records too short for what their kind announces (an ABI mismatch).
    var malformedRecords: UInt64 { malformed.load(ordering: .relaxed) }
    /// Events of the agent's own start-up self-test: read and decoded, never stored.
    var selfTestEvents: UInt64 { ownEvents.load(ordering: .relaxed) }
}
