import CGlibc
import Glibc

/// A named thread that runs one closure to its end: the agent's long-lived loops (ring buffer readers, watches,
/// timers), started through pthreads so that the daemon needs nothing of Foundation's `Thread`.
public enum BackgroundThread {
    /// Starts `body` on a new detached thread named `name` (the kernel keeps 15 bytes of it, shown by `ps -L`).
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Body(name: name, run: body)).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { raw in
                let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
                _ = cglibc_name_thread(body.name)
                body.run()
                return nil
            }, box)
        // Out of threads is out of memory for the agent: nothing it could do would run without them.
        precondition(created == 0, "pthread_create for \(name): \(String(cString: strerror(created)))")
        pthread_detach(thread)
    }

    private final class Body {
        let name: String
        let run: @Sendable () -> Void
        init(name: String, run: @escaping @Sendable () -> Void) {
            self.name = name
            self.run = run
        }
    }
}
