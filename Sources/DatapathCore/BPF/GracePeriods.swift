import Synchronization

/// When the process last waited out an RCU grace period, and when each bucket table last withdrew entries: a stale
/// entry is free once a grace period that began after its withdrawal was written has ended (no packet that saw it
/// valid is still running). So one grace period frees the stale entries of every call before it, and a policy
/// deleted and imported again waits for one, not one per endpoint or bucket.
enum GracePeriods {
    private struct State {
        /// When the last grace period the process completed began.
        var lastBegan: ContinuousClock.Instant?
        /// By map id: when its last withdrawals were written.
        var withdrawn: [UInt32: ContinuousClock.Instant] = [:]
    }

    private static let state = Mutex(State())

    /// Records that withdrawals of `map` were just written.
    static func withdrew(map: UInt32) {
        state.withLock { $0.withdrawn[map] = .now }
    }

    /// Whether every stale entry of `map` is free: a grace period began after its last withdrawal (stale entries
    /// an earlier agent left were written before this process began).
    static func staleAreFree(map: UInt32) -> Bool {
        state.withLock { state in
            guard let began = state.lastBegan else { return false }
            return state.withdrawn[map].map { began > $0 } ?? true
        }
    }

    /// Whether a grace period the process completed began after `instant`.
    static func began(after instant: ContinuousClock.Instant) -> Bool {
        state.withLock { state in state.lastBegan.map { $0 > instant } ?? false }
    }

    /// Waits out a grace period with `wait`; false when the kernel refused it.
    static func wait(_ wait: () -> Bool) -> Bool {
        let began = ContinuousClock.now
        guard wait() else { return false }
        state.withLock { state in state.lastBegan = max(state.lastBegan ?? began, began) }
        return true
    }
}
