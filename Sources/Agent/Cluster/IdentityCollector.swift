import AgentAPI
import Cluster
import Dispatch
import FoundationEssentials
import Logging
import Synchronization

/// Runs this node's `ClusterIdentityGC` on a thread of its own, one pass every interval. Every node runs one; the
/// collector's transactions make that safe.
final class IdentityCollector: Sendable {
    private let stopped = Atomic(false)
    private let wakeup = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let started = Atomic(false)
    let interval: Duration

    init(interval: Duration) { self.interval = interval }

    func start(_ gc: ClusterIdentityGC, logger: Logger) {
        guard !started.exchange(true, ordering: .relaxed) else { return }
        BackgroundThread.start(name: "identity-gc") { [self] in
            var gc = gc
            let milliseconds = Int(interval / .milliseconds(1))
            while !stopped.load(ordering: .relaxed) {
                do throws(AgentError) {
                    let released = try gc.collect()
                    if !released.isEmpty {
                        logger.info("released unreferenced identities", metadata: ["identities": "\(released)"])
                    }
                } catch {
                    // etcd out of reach: what was seen unreferenced is kept, the next pass carries on.
                    logger.warning("identity collection failed", metadata: ["error": "\(error.message)"])
                }
                _ = wakeup.wait(timeout: .now() + .milliseconds(milliseconds))
            }
            finished.signal()
        }
    }

    func stop() {
        guard started.load(ordering: .relaxed) else { return }
        stopped.store(true, ordering: .relaxed)
        wakeup.signal()
        finished.wait()
    }
}
