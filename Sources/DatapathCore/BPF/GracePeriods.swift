import AgentAPI
import CGlibc
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
        /// Whether a thread waits out a grace period for `waitSoon`, and whether it was asked again meanwhile.
        var soon = false
        var soonAgain = false
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
        completed(began: began)
        return true
    }

    /// Records a grace period that began at `began` and has ended, waited out by other means.
    static func completed(began: ContinuousClock.Instant) {
        state.withLock { state in state.lastBegan = max(state.lastBegan ?? began, began) }
    }

    /// Waits out a grace period on a thread of its own, soon: called after withdrawals, so that a change a moment
    /// later finds what they freed without waiting itself. One thread at a time; asked again while it waits, it
    /// waits once more (the withdrawals since were written after its grace period began).
    static func waitSoon() {
        let start = state.withLock { state -> Bool in
            guard !state.soon else {
                state.soonAgain = true
                return false
            }
            state.soon = true
            return true
        }
        guard start else { return }
        BackgroundThread.start(name: "grace-period", scheduling: .batch) {
            var again = true
            while again {
                let waited = wait { cglibc_synchronize_rcu() == 0 }
                again = state.withLock { state -> Bool in
                    guard waited, state.soonAgain else {
                        state.soon = false
                        state.soonAgain = false
                        return false
                    }
                    state.soonAgain = false
                    return true
                }
            }
        }
    }
}
