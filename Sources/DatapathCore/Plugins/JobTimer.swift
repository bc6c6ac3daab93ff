import Foundation
import Logging

/// Runs one periodic job on a thread of its own, sleeping for the interval the job asks for after each run.
/// `fire()` wakes it early; `cancel()` ends it.
final class JobTimer: @unchecked Sendable {
    // The condition guards `cancelled` and `fired`.
    let job: PeriodicJob
    private let condition = NSCondition()
    private var cancelled = false
    private var fired = false

    init(job: PeriodicJob, plugin: String, logger: Logger) {
        self.job = job
        let thread = Thread { [self] in self.loop() }
        thread.name = "\(plugin)/\(job.name)"
        thread.start()
    }

    private func loop() {
        while true {
            let interval = job.interval()
            let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
            let deadline = Date(timeIntervalSinceNow: max(seconds, 0.001))
            condition.lock()
            while !cancelled && !fired && condition.wait(until: deadline) {}
            let stop = cancelled
            fired = false
            condition.unlock()
            if stop { return }
            job.run()
        }
    }

    func fire() {
        condition.lock()
        fired = true
        condition.signal()
        condition.unlock()
    }

    func cancel() {
        condition.lock()
        cancelled = true
        condition.signal()
        condition.unlock()
    }
}
