import CCurl
import Synchronization

/// Wakes a transfer's `step` from another thread (`curl_multi_wakeup`, which libcurl allows from any thread), so
/// a stream can be cancelled at once instead of at its next timeout.
public final class TransferWaker: Sendable {
    private struct State {
        // The address of the transfer's multi handle; nil once the transfer is gone.
        var multi: UInt?
        var woken = false
    }

    private let state: Mutex<State>

    init(multi: UnsafeMutableRawPointer) {
        state = Mutex(State(multi: UInt(bitPattern: multi)))
    }

    /// Makes the transfer's current or next `step` return `.idle`. Does nothing once the transfer is gone.
    public func wake() {
        state.withLock { state in
            state.woken = true
            if let multi = state.multi, let handle = UnsafeMutableRawPointer(bitPattern: multi) {
                nc_curl_multi_wakeup(handle)
            }
        }
    }

    /// Whether `wake` was called since the last call.
    func takeWoken() -> Bool {
        state.withLock { state in
            defer { state.woken = false }
            return state.woken
        }
    }

    /// Called by the transfer before it frees its multi handle.
    func invalidate() {
        state.withLock { $0.multi = nil }
    }
}
