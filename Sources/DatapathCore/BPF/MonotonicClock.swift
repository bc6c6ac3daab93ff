import Glibc

/// The clock of the datapath's lifetimes (conntrack, NAT): programs stamp
/// `bpf_ktime_get_coarse_ns() / 1e9 + lifetime`, and bpf_ktime_get_coarse_ns reads CLOCK_MONOTONIC_COARSE (the
/// monotonic clock as of the last tick), so user space compares against the same clock in the same unit.
public enum MonotonicClock {
    /// CLOCK_MONOTONIC_COARSE in whole seconds, truncated as the datapath truncates it.
    public static func seconds() -> UInt32 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &now)
        return UInt32(truncatingIfNeeded: now.tv_sec)
    }
}
