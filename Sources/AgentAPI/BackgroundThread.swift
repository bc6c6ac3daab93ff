import CGlibc
import Glibc

/// A named thread that runs one closure to its end: the agent's long-lived loops (ring buffer readers, watches,
/// timers), started through pthreads so that the daemon needs nothing of Foundation's `Thread`.
public enum BackgroundThread {
    /// How the scheduler treats the thread.
    public enum Scheduling: Sendable {
        /// As every other thread of the machine.
        case normal
        /// Bulk work whose latency does not matter (SCHED_BATCH): it keeps its fair share of the CPU, but waking
        /// up it does not preempt the thread running, so on a busy node it never delays the pods' requests.
        case batch
    }

    /// Starts `body` on a new detached thread named `name` (the kernel keeps 15 bytes of it, shown by `ps -L`).
    public static func start(
        name: String, scheduling: Scheduling = .normal, _ body: @escaping @Sendable () -> Void
    ) {
        let box = Unmanaged.passRetained(Body(name: name, scheduling: scheduling, run: body)).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { raw in
                let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
                _ = cglibc_name_thread(body.name)
                // Refused only without CAP_SYS_NICE under a policy that forbids it: the thread then runs as others.
                if body.scheduling == .batch { _ = cglibc_thread_batch() }
                body.run()
                return nil
            }, box)
        // Out of threads is out of memory for the agent: nothing it could do would run without them.
        precondition(created == 0, "pthread_create for \(name): \(String(cString: strerror(created)))")
        pthread_detach(thread)
    }

    private final class Body {
        let name: String
        let scheduling: Scheduling
        let run: @Sendable () -> Void
        init(name: String, scheduling: Scheduling, run: @escaping @Sendable () -> Void) {
            self.name = name
            self.scheduling = scheduling
            self.run = run
        }
    }
}
