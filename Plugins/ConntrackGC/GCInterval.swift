/// The adaptive pace of conntrack sweeps, as Cilium paces its CT GC.
///
/// After each full sweep the share of the table it deleted (deleted / max entries) steers the next interval: a
/// sweep that freed more than a quarter of the table ran too late, so the interval shrinks by that share (at most
/// by 90 %, never below the minimum); one that freed under 5 % ran too early, so the interval grows by half (never
/// above the maximum). A sweep that deleted nothing says nothing about churn (an idle node, or one whose
/// workloads have not started): the pace stays, so the GC is still responsive when traffic arrives.
public struct GCInterval: Sendable, Equatable {
    /// Seconds until the next sweep.
    public private(set) var seconds: Int
    public let minimum: Int
    public let maximum: Int

    public init(initial: Int, minimum: Int, maximum: Int) {
        self.minimum = max(minimum, 1)
        self.maximum = max(maximum, self.minimum)
        seconds = min(max(initial, self.minimum), self.maximum)
    }

    /// Adjusts the interval after a sweep that deleted `deleted` entries of a table of `maxEntries`.
    public mutating func adapt(deleted: Int, maxEntries: Int) {
        guard maxEntries > 0, deleted > 0 else { return }
        let ratio = Double(deleted) / Double(maxEntries)
        if ratio > 0.25 {
            let shrunk = (Double(seconds) * (1 - min(ratio, 0.9))).rounded()
            seconds = max(Int(shrunk), minimum)
        } else if ratio < 0.05 {
            let grown = (Double(seconds) * 1.5).rounded()
            seconds = min(Int(min(grown, Double(maximum))), maximum)
        }
    }
}
