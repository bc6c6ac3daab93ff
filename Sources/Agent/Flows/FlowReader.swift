import DatapathCore

/// Reads the datapath's flow events from the `na_events` ring buffer on its own thread and hands each batch to a
/// `FlowIngest`, which turns them into `Flow`s with what the agent knows at that moment and stores them.
final class FlowReader: Sendable {
    static let ringBuffer = "na_events"

    private let reader: RingBufferReader
    private let ingest: FlowIngest

    /// `context` gives the agent's current knowledge (nil once the agent is gone); it is asked once per batch.
    /// `refused` gets the HTTP requests the kernel refused, once they are stored (see `FlowIngest`).
    init(
        datapath: Datapath, store: FlowStore, context: @escaping @Sendable () -> FlowContext?,
        refused: @escaping @Sendable ([Flow]) -> Void = { _ in }
    ) throws {
        let ingest = FlowIngest(store: store, context: context, refused: refused)
        reader = RingBufferReader(map: try datapath.map(Self.ringBuffer), threadName: "flow-reader") { records in
            ingest.ingest(records)
        }
        self.ingest = ingest
    }

    func start() throws { try reader.start() }

    func stop() { reader.stop() }

    /// Events read from the ring buffer, and records too short for what their kind announces (an ABI mismatch).
    var eventsRead: UInt64 { reader.recordsRead }
    var malformedRecords: UInt64 { ingest.malformedRecords }
    /// Events of the agent's own start-up self-test: read and decoded, never stored.
    var selfTestEvents: UInt64 { ingest.selfTestEvents }
}
