import DatapathCore

/// A Prometheus histogram's state: cumulative bucket counts, the sum and the count of observations.
/// A value type: the owner serializes access.
public struct Histogram: Sendable, Equatable {
    /// Upper bounds of the buckets, ascending; `+Inf` is implicit.
    public let bounds: [Double]
    /// Observations at or below each bound (not yet cumulative).
    private var counts: [UInt64]
    public private(set) var sum: Double = 0
    public private(set) var count: UInt64 = 0

    /// Latency buckets from 100 µs to 10 s: API handlers answer in well under a millisecond when healthy.
    public static let latencyBounds: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]

    public init(bounds: [Double] = Histogram.latencyBounds) {
        self.bounds = bounds.sorted()
        counts = [UInt64](repeating: 0, count: bounds.count)
    }

    public mutating func observe(_ value: Double) {
        if let index = bounds.firstIndex(where: { value <= $0 }) { counts[index] += 1 }
        sum += value
        count += 1
    }

    /// The `_bucket` (cumulative, with `le`), `_sum` and `_count` samples of metric `name` with `labels`.
    public func samples(name: String, labels: [String: String], help: String) -> [MetricSample] {
        var result: [MetricSample] = []
        var cumulative: UInt64 = 0
        for (bound, n) in zip(bounds, counts) {
            cumulative += n
            var bucketLabels = labels
            bucketLabels["le"] = PrometheusText.value(bound)
            result.append(
                MetricSample(
                    name: name + "_bucket", labels: bucketLabels, value: Double(cumulative), help: help,
                    type: "histogram"))
        }
        var infinity = labels
        infinity["le"] = "+Inf"
        result.append(
            MetricSample(name: name + "_bucket", labels: infinity, value: Double(count), help: help, type: "histogram"))
        result.append(MetricSample(name: name + "_sum", labels: labels, value: sum, help: help, type: "histogram"))
        result.append(
            MetricSample(name: name + "_count", labels: labels, value: Double(count), help: help, type: "histogram"))
        return result
    }
}
