import DatapathCore

/// One slot of `na_metrics` as read from the map: its (reason, direction) and its counts summed over the CPUs.
struct MetricsSlot {
    var reason: UInt16
    var egress: Bool
    var packets: UInt64 = 0
    var bytes: UInt64 = 0

    /// The array holds a slot for every (reason, direction): one whose every CPU's counts are zero never counted
    /// anything, and is no sample and no entry.
    static func unused(_ value: [UInt8]) -> Bool { value.allSatisfy { $0 == 0 } }

    /// `key` and `value` as a batch read or a lookup gives them, `cpus` the map's values per key.
    init(key: [UInt8], value: [UInt8], cpus: Int) {
        let slot = na_metrics_key_of_slot(valueFrom(key, at: 0))
        reason = slot.reason
        egress = slot.direction == UInt8(NA_DIR_EGRESS.rawValue)
        let stride =
            cpus == 1 ? MemoryLayout<na_metrics_value>.size : (MemoryLayout<na_metrics_value>.size + 7) & ~7
        for cpu in 0..<cpus {
            let counts: na_metrics_value = valueFrom(value, at: cpu * stride)
            packets &+= counts.packets
            bytes &+= counts.bytes
        }
    }

    var direction: String { egress ? "egress" : "ingress" }
}
