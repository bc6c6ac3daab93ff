import AgentAPI
import Dispatch
import Logging
import Synchronization

/// Runs one periodic job on a thread of its own, sleeping for the interval the job asks for after each run.
/// `fire()` wakes it early; `cancel()` ends it.
final class JobTimer: Sendable {
    private struct State {
        var cancelled = false
        var fired = false
    }

    let job: PeriodicJob
    private let state = Mutex(State())
    /// Signalled by `fire()` and `cancel()`; `state` says which (a count left by an earlier signal wakes the loop
    /// once more, and it goes back to sleep).
    private let wake = DispatchSemaphore(value: 0)

    init(job: PeriodicJob, plugin: String, logger: Logger) {
        self.job = job
        BackgroundThread.start(name: "\(plugin)/\(job.name)") { [self] in self.loop() }
    }

    private func loop() {
        while true {
            let interval = job.interval()
            let nanoseconds =
                Int(interval.components.seconds) * 1_000_000_000
                + Int(interval.components.attoseconds / 1_000_000_000)
            let deadline = DispatchTime.now() + .nanoseconds(max(nanoseconds, 1_000_000))
            while true {
                let timedOut = wake.wait(timeout: deadline) == .timedOut
                let (cancelled, fired) = state.withLock { state in
                    defer { state.fired = false }
                    return (state.cancelled, state.fired)
                }
                if cancelled { return }
                if fired || timedOut { break }
            }
            job.run()
        }
    }

    func fire() {
        state.withLock { $0.fired = true }
        wake.signal()
    }

    func cancel() {
        state.withLock { $0.cancelled = true }
        wake.signal()
    }
}
