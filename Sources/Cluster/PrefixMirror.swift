import AgentAPI
import Dispatch
import EtcdClient
import FoundationEssentials
import Logging
import Synchronization

/// Keeps a consumer in step with every key under a prefix: lists the prefix, hands over the whole list, then
/// watches from the list's revision and hands over each change. When the watch breaks (etcd down, a member
/// lost, a compacted revision) it lists again after a pause, so the consumer converges without restarting
/// anything; a consumer told `.snapshot` replaces what it had, which also covers deletes it missed. A member that
/// stops answering does not break its watches, they only go quiet: so the member a watch reads from is asked every
/// `livenessInterval` whether it still answers with a leader, and when it does not the watch is given up and the
/// prefix listed again through another member.
public final class PrefixMirror: Sendable {
    public enum Change: Sendable {
        /// Every key under the prefix, as of `revision`.
        case snapshot([EtcdKeyValue], revision: Int64)
        case put(EtcdKeyValue)
        case delete(key: String)
    }

    public typealias Handler = @Sendable (Change) -> Void
    /// Takes the changes of one list or one watch response together, with the revision they bring the consumer
    /// to. etcd never splits the events of one revision over two responses, so the keys one transaction wrote
    /// arrive in one call.
    public typealias BatchHandler = @Sendable (_ changes: [Change], _ revision: Int64) -> Void

    public let prefix: String
    private let client: EtcdClient
    private let handler: BatchHandler
    private let logger: Logger
    private let retryDelay: Duration
    private let livenessInterval: Duration
    private let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    struct State {
        var stopped = false
        var watch: EtcdWatch?
        var revision: Int64 = 0
        var synced = false
        var lastSync: Date?
        var lastError: String?
        var failures = 0
        var lists = 0
    }

    public convenience init(
        client: EtcdClient, prefix: String, retryDelay: Duration = .milliseconds(500),
        livenessInterval: Duration = .seconds(3), logger: Logger, handler: @escaping Handler
    ) {
        self.init(
            client: client, prefix: prefix, retryDelay: retryDelay, livenessInterval: livenessInterval, logger: logger,
            batchHandler: { changes, _ in for change in changes { handler(change) } })
    }

    /// A mirror whose consumer takes each list or watch response as one batch.
    public init(
        client: EtcdClient, prefix: String, retryDelay: Duration = .milliseconds(500),
        livenessInterval: Duration = .seconds(3), logger: Logger, batchHandler: @escaping BatchHandler
    ) {
        self.livenessInterval = livenessInterval
        self.client = client
        self.prefix = prefix
        self.handler = batchHandler
        self.logger = logger
        self.retryDelay = retryDelay
    }

    /// Whether the consumer holds a current copy: listed, and the watch since then has not broken.
    public var isSynced: Bool { state.withLock { $0.synced } }
    /// The revision of the last list or change handed over.
    public var revision: Int64 { state.withLock { $0.revision } }
    public var lastSync: Date? { state.withLock { $0.lastSync } }
    public var lastError: String? { state.withLock { $0.lastError } }
    /// How many times the list or the watch failed since the start.
    public var failures: Int { state.withLock { $0.failures } }
    /// How many times the prefix was listed and handed over whole: once at the start, again after each failure.
    public var lists: Int { state.withLock { $0.lists } }

    /// Starts listing and watching on a thread of its own.
    public func start() {
        BackgroundThread.start(name: "etcd-mirror") { [self] in
            run()
            finished.signal()
        }
    }

    /// Stops the watch; no handler call happens after it returns.
    public func stop() {
        let watch = state.withLock { state -> EtcdWatch? in
            state.stopped = true
            return state.watch
        }
        watch?.cancel()
        wakeup.signal()
        finished.wait()
    }

    private var stopped: Bool { state.withLock { $0.stopped } }

    private func run() {
        while !stopped {
            do {
                let listed = try client.range(prefix: prefix)
                guard !stopped else { return }
                handler([.snapshot(listed.kvs, revision: listed.revision)], listed.revision)
                state.withLock {
                    $0.revision = listed.revision
                    $0.synced = true
                    $0.lastSync = Date()
                    $0.lastError = nil
                    $0.lists += 1
                }
                watch(from: listed.revision + 1)
            } catch {
                record(failure: error.message)
            }
            guard !stopped else { return }
            _ = wakeup.wait(timeout: .now() + .milliseconds(Int(retryDelay / .milliseconds(1))))
        }
    }

    /// Watches until the watch fails or `stop()`.
    private func watch(from revision: Int64) {
        let ended = DispatchSemaphore(value: 0)
        let watch = client.watch(
            prefix: prefix, fromRevision: revision,
            onEvents: { [self] events, revision in
                handler(
                    events.map { event in
                        switch event.type {
                        case .put: .put(event.kv)
                        case .delete: .delete(key: event.kv.key)
                        }
                    }, revision)
                state.withLock {
                    $0.revision = revision
                    $0.lastSync = Date()
                }
            },
            onError: { [self] failure in
                record(failure: "\(failure)")
                ended.signal()
            })
        let keep = state.withLock { state -> Bool in
            state.watch = watch
            return !state.stopped
        }
        if !keep {
            watch.cancel()
            return
        }
        // Ends with the watch's failure, with its member gone silent, or with stop() (which cancels the watch and
        // signals `wakeup`).
        var nextCheck = ContinuousClock.now + livenessInterval
        while ended.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
            if stopped {
                watch.cancel()
                return
            }
            guard ContinuousClock.now >= nextCheck else { continue }
            if let endpoint = watch.endpoint, let problem = silence(of: endpoint) {
                watch.cancel()
                client.preferNext(after: endpoint)
                record(failure: problem)
                break
            }
            nextCheck = ContinuousClock.now + livenessInterval
        }
        state.withLock { $0.watch = nil }
    }

    /// Why the member at `endpoint` cannot feed a watch (no answer within a second, or no leader), or nil.
    private func silence(of endpoint: String) -> String? {
        do throws(AgentError) {
            let status = try client.status(endpoint: endpoint, timeout: .seconds(1))
            return status.leader == 0 ? "etcd member \(endpoint) of the watch of \(prefix) has no leader" : nil
        } catch {
            return "etcd member \(endpoint) of the watch of \(prefix) does not answer: \(error.message)"
        }
    }

    private func record(failure: String) {
        logger.warning(
            "etcd list or watch failed; listing again", metadata: ["prefix": "\(prefix)", "error": "\(failure)"])
        state.withLock {
            $0.synced = false
            $0.lastError = failure
            $0.failures += 1
        }
    }
}
