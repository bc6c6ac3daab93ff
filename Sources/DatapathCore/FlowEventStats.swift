/// How many flow events the datapath wrote into the `na_events` ring buffer and how many it could not write because
/// the ring was full (the reader fell behind), summed over CPUs from `na_event_stats`.
public struct FlowEventStats: Sendable, Equatable {
    public var emitted: UInt64
    public var lost: UInt64

    public init(emitted: UInt64 = 0, lost: UInt64 = 0) {
        self.emitted = emitted
        self.lost = lost
    }
}

extension Datapath {
    /// The datapath's flow-event accounting (a per-CPU array of one `na_event_stats`).
    public func flowEventStats() throws -> FlowEventStats {
        let map: TypedMap<UInt32, na_event_stats> = try typedMap("na_event_stats")
        var total = FlowEventStats()
        for cpu in try map.lookupPerCPU(0) ?? [] {
            total.emitted &+= cpu.emitted
            total.lost &+= cpu.lost
        }
        return total
    }
}
