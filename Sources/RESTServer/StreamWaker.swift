import AgentAPI
import CMicroHTTPD
import Dispatch
import FoundationEssentials
import Synchronization

/// Wakes streaming connections that were parked because their source had nothing to send.
///
/// Waiting inside MHD's content-reader callback would stall every other connection the same worker thread serves,
/// so a stream with nothing to send suspends its connection instead, and this resumes all parked connections every
/// `interval`, after which MHD asks their sources again.
final class StreamWaker: Sendable {
    /// A suspended MHD connection. MHD_resume_connection may be called from any thread, so handing the pointer to
    /// the waker thread is safe; it is resumed exactly once, and MHD cannot free it while it is suspended.
    private struct Parked: @unchecked Sendable {
        let connection: OpaquePointer
    }

    private struct State {
        var parked: [Parked] = []
        var stopping = false
        var started = false
        /// Streaming responses MHD still holds (created and not yet released).
        var streams = 0
    }

    private let state = Mutex(State())
    private let interval: Duration
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let streamsEnded = DispatchSemaphore(value: 0)

    init(interval: Duration) {
        self.interval = interval
    }

    /// Starts the thread that resumes parked connections.
    func start() {
        state.withLock { $0.started = true }
        BackgroundThread.start(name: "rest-stream-waker") { [self] in
            let nanoseconds =
                Int(interval.components.seconds) * 1_000_000_000
                + Int(interval.components.attoseconds / 1_000_000_000)
            while !isStopping {
                _ = wake.wait(timeout: .now() + .nanoseconds(max(nanoseconds, 1_000_000)))
                resumeAll()
            }
            finished.signal()
        }
    }

    /// Whether the server is shutting down; streams then end instead of parking.
    var isStopping: Bool { state.withLock { $0.stopping } }

    /// Suspends `connection` until the next tick. Must be called from MHD's callback for that connection.
    func park(_ connection: OpaquePointer) {
        MHD_suspend_connection(connection)
        let resumeNow = state.withLock { state in
            if state.stopping { return true }
            state.parked.append(Parked(connection: connection))
            return false
        }
        // MHD_stop_daemon must not find suspended connections: if stop() already ran its final resume, undo ours.
        if resumeNow { MHD_resume_connection(connection) }
    }

    /// Stops the thread and resumes every parked connection; call before MHD_stop_daemon.
    func stop() {
        let (wasStopping, started) = state.withLock { state in
            defer { state.stopping = true }
            return (state.stopping, state.started)
        }
        guard !wasStopping else { return }
        if started {
            wake.signal()
            finished.wait()
        }
        resumeAll()
    }

    /// A streaming response was created.
    func streamOpened() {
        state.withLock { $0.streams += 1 }
    }

    /// MHD released a streaming response: its stream ended (its last chunk was handed to the socket) or the
    /// connection went away.
    func streamClosed() {
        let wakeStopper = state.withLock { state in
            state.streams -= 1
            return state.stopping && state.streams == 0
        }
        if wakeStopper { streamsEnded.signal() }
    }

    /// After `stop()`: waits until every stream has ended, at most `timeout`, so that stopping the daemon does not
    /// cut a stream off before its terminating chunk. A client that stopped reading can hold this up to `timeout`.
    func waitForStreamsToEnd(timeout: Duration) {
        let deadline = ContinuousClock.now + timeout
        while state.withLock({ $0.streams > 0 }) {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return }
            let milliseconds =
                Int(left.components.seconds) * 1000 + Int(left.components.attoseconds / 1_000_000_000_000_000)
            _ = streamsEnded.wait(timeout: .now() + .milliseconds(min(max(milliseconds, 1), 50)))
        }
    }

    private func resumeAll() {
        let parked = state.withLock { state in
            defer { state.parked = [] }
            return state.parked
        }
        for entry in parked { MHD_resume_connection(entry.connection) }
    }
}
