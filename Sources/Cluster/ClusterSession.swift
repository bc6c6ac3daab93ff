import AgentAPI
import Dispatch
import EtcdClient
import FoundationEssentials
import Logging
import Synchronization

/// This node's presence in etcd: a lease kept alive while the agent runs, and the keys the node owns under it
/// (its node entry, its endpoints' ipcache entries, its references on identities).
///
/// Owning a key only records what should be in etcd; a thread of the session writes it when etcd answers, and
/// writes everything again under a new lease when the old one was lost (etcd down for longer than the TTL, or an
/// agent down for longer). So a change on the node never waits for etcd, and etcd coming back converges by itself.
/// An agent restarted within the TTL takes up the lease it held (`resume`): other nodes see none of its keys go.
public final class ClusterSession: Sendable {
    public let client: EtcdClient
    public let ttlSeconds: Int64
    private let logger: Logger
    private let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let refusedHandler = Mutex<(@Sendable (String) -> Void)?>(nil)
    private let leaseHandler = Mutex<(@Sendable (Int64) -> Void)?>(nil)

    struct State {
        /// What should be in etcd under the lease.
        var owned: [String: [UInt8]] = [:]
        /// What was written under the current lease.
        var written: [String: [UInt8]] = [:]
        /// Keys whose owned and written values may differ.
        var dirty: Set<String> = []
        /// Owned keys written only while a compare holds (`own(_:_:onlyIf:)`).
        var conditions: [String: EtcdCompare] = [:]
        /// Keys a resumed lease held, values unknown: written again when owned, deleted when not.
        var inherited: Set<String> = []
        /// The lease an earlier agent of the node held, and the key that shows it is this node's (`resume`).
        var resumable: (lease: Int64, proof: String)?
        var lease: Int64?
        var stopped = false
        var lastError: String?
        var lastWrite: Date?
        var writes = 0
        var errors = 0
    }

    public init(client: EtcdClient, ttlSeconds: Int64, logger: Logger) {
        self.client = client
        self.ttlSeconds = ttlSeconds
        self.logger = logger
    }

    /// Makes `key` hold `value` under the node's lease, as soon as etcd answers.
    public func own(_ key: String, _ value: [UInt8]) {
        let changed = state.withLock { state -> Bool in
            guard state.owned[key] != value else { return false }
            state.owned[key] = value
            state.dirty.insert(key)
            return true
        }
        if changed { wakeup.signal() }
    }

    public func own(_ key: String, _ value: JSON) { own(key, Array(value.serialized().utf8)) }

    /// Makes `key` hold `value` under the node's lease, written only while `condition` holds in etcd (one
    /// transaction). When it does not, the key is left unwritten and the handler of `onRefused` is told; the key is
    /// tried again after `retry`, or under a new lease.
    public func own(_ key: String, _ value: [UInt8], onlyIf condition: EtcdCompare) {
        let changed = state.withLock { state -> Bool in
            guard state.owned[key] != value || state.conditions[key] != condition else { return false }
            state.owned[key] = value
            state.conditions[key] = condition
            state.dirty.insert(key)
            return true
        }
        if changed { wakeup.signal() }
    }

    /// Tries a refused key again.
    public func retry(_ key: String) {
        state.withLock { _ = $0.dirty.insert(key) }
        wakeup.signal()
    }

    /// Sets what is told of a conditional key whose condition did not hold; called on the session's thread.
    public func onRefused(_ handler: @escaping @Sendable (String) -> Void) {
        refusedHandler.withLock { $0 = handler }
    }

    /// Sets what is told of each lease the session takes (granted or resumed); called on the session's thread, so
    /// the owner can keep the id for `resume` after a restart.
    public func onLease(_ handler: @escaping @Sendable (Int64) -> Void) {
        leaseHandler.withLock { $0 = handler }
    }

    /// Before `start`: take up `lease`, which an earlier agent of this node held, when it is still alive and holds
    /// `key` (the node's own entry: a lease without it is not this node's). Its keys then never leave etcd; once
    /// the session runs, those owned are written again and the others deleted, so the owner must own everything it
    /// still holds by then. A lease gone or not the node's is left, and a new one granted.
    public func resume(lease: Int64, provedBy key: String) {
        state.withLock { $0.resumable = (lease, key) }
    }

    /// Removes `key` from etcd (when the node wrote it) and stops owning it.
    public func disown(_ key: String) {
        let changed = state.withLock { state -> Bool in
            guard state.owned.removeValue(forKey: key) != nil else { return false }
            state.conditions[key] = nil
            state.dirty.insert(key)
            return true
        }
        if changed { wakeup.signal() }
    }

    /// Whether every owned key is written under a live lease.
    public var isInSync: Bool {
        state.withLock { $0.lease != nil && $0.owned == $0.written && $0.inherited.isEmpty }
    }

    public var lease: Int64? { state.withLock { $0.lease } }
    public var lastError: String? { state.withLock { $0.lastError } }
    public var lastWrite: Date? { state.withLock { $0.lastWrite } }
    /// Writes (puts and deletes) done, and failures met, since the start.
    public var counters: (writes: Int, errors: Int) { state.withLock { ($0.writes, $0.errors) } }
    public var ownedCount: Int { state.withLock { $0.owned.count } }

    /// Starts keeping the lease alive and the owned keys written, on a thread of its own.
    public func start() {
        BackgroundThread.start(name: "etcd-session") { [self] in
            run()
            finished.signal()
        }
    }

    /// Stops the thread. `revoke` also deletes every key of the lease at once (a node leaving for good); without
    /// it the keys stay until the TTL runs out, so a restart within the TTL changes nothing for other nodes.
    public func stop(revoke: Bool = false) {
        let lease = state.withLock { state -> Int64? in
            state.stopped = true
            return state.lease
        }
        wakeup.signal()
        finished.wait()
        if revoke, let lease { try? client.revoke(lease) }
    }

    private var stopped: Bool { state.withLock { $0.stopped } }

    /// Renews the lease every third of its TTL and writes what changed whenever woken.
    private func run() {
        let renewEvery = Duration.milliseconds(ttlSeconds * 1000 / 3)
        var nextRenewal = ContinuousClock.now
        while !stopped {
            do {
                if ContinuousClock.now >= nextRenewal {
                    try renew()
                    nextRenewal = ContinuousClock.now + renewEvery
                }
                try writePending()
                state.withLock { $0.lastError = nil }
            } catch {
                state.withLock {
                    $0.lastError = error.message
                    $0.errors += 1
                }
                if error.code == .notFound, dropLease() {
                    // The lease expired under the writes (etcd away longer than the TTL): take a new one now
                    // rather than at the next renewal, which could be a third of the TTL away.
                    nextRenewal = ContinuousClock.now
                } else {
                    logger.warning(
                        "etcd unavailable; keeping state to write later", metadata: ["error": "\(error.message)"])
                    // Try again soon, without hammering a store that is down.
                    nextRenewal = min(nextRenewal, ContinuousClock.now + .seconds(1))
                }
            }
            let wait = max(.milliseconds(10), min(nextRenewal - ContinuousClock.now, renewEvery))
            _ = wakeup.wait(timeout: .now() + .milliseconds(Int(wait / .milliseconds(1))))
        }
    }

    /// Forgets the current lease, so the next renewal grants a new one and writes everything owned again; false
    /// when there was none.
    private func dropLease() -> Bool {
        state.withLock { state -> Bool in
            guard let lease = state.lease else { return false }
            logger.warning("etcd lease not found; writing this node's keys again", metadata: ["lease": "\(lease)"])
            state.lease = nil
            state.inherited = []
            return true
        }
    }

    /// Keeps the lease alive; when it is gone (expired while etcd or the agent was down) takes a new one, and
    /// everything owned is written again under it.
    private func renew() throws(AgentError) {
        if let lease = state.withLock({ $0.lease }) {
            if try client.keepAliveOnce(lease) > 0 { return }
            logger.warning("etcd lease expired; writing this node's keys again", metadata: ["lease": "\(lease)"])
        } else if let resumable = state.withLock({ $0.resumable }), try resume(resumable) {
            return
        }
        let granted = try client.grant(ttl: ttlSeconds)
        state.withLock {
            $0.lease = granted.id
            $0.written = [:]
            $0.inherited = []
            $0.dirty = Set($0.owned.keys)
        }
        logger.info("etcd lease granted", metadata: ["lease": "\(granted.id)", "ttl": "\(granted.ttl)"])
        leaseHandler.withLock { $0 }?(granted.id)
    }

    /// Takes up the lease of `resume(lease:provedBy:)` when it is alive and holds the proof key; false (and it is
    /// not tried again) when it does not. Throws, to be tried again, when etcd does not answer.
    private func resume(_ resumable: (lease: Int64, proof: String)) throws(AgentError) -> Bool {
        // Forgotten only once etcd has answered both: a request that fails leaves the resume for the next renewal.
        let found = try client.timeToLive(resumable.lease)
        var alive = false
        if let found, found.keys.contains(resumable.proof) { alive = try client.keepAliveOnce(resumable.lease) > 0 }
        state.withLock { $0.resumable = nil }
        guard let found, alive else {
            logger.info("the earlier etcd lease is gone; taking a new one", metadata: ["lease": "\(resumable.lease)"])
            return false
        }
        state.withLock {
            $0.lease = resumable.lease
            $0.written = [:]
            $0.inherited = Set(found.keys)
            $0.dirty = Set($0.owned.keys).union(found.keys)
        }
        logger.info(
            "etcd lease resumed", metadata: ["lease": "\(resumable.lease)", "keys": "\(found.keys.count)"])
        leaseHandler.withLock { $0 }?(resumable.lease)
        return true
    }

    /// Puts what is owned but not written (or written otherwise), deletes what was written but is no longer owned.
    private func writePending() throws(AgentError) {
        guard let lease = state.withLock({ $0.lease }) else { return }
        while true {
            let next = state.withLock { state -> (key: String, value: [UInt8]?, condition: EtcdCompare?)? in
                while let key = state.dirty.popFirst() {
                    if state.owned[key] != state.written[key] || state.inherited.contains(key) {
                        return (key, state.owned[key], state.owned[key] == nil ? nil : state.conditions[key])
                    }
                }
                return nil
            }
            guard let next else { return }
            do {
                if let value = next.value, let condition = next.condition {
                    let op = EtcdOp.put(key: next.key, value: value, lease: lease)
                    guard try client.txn(compare: [condition], success: [op]).succeeded else {
                        logger.warning("etcd refused a conditional key", metadata: ["key": "\(next.key)"])
                        refusedHandler.withLock { $0 }?(next.key)
                        continue
                    }
                } else if let value = next.value {
                    _ = try client.put(next.key, value, lease: lease)
                } else {
                    _ = try client.delete(next.key)
                }
            } catch {
                state.withLock { _ = $0.dirty.insert(next.key) }
                throw error
            }
            state.withLock {
                $0.written[next.key] = next.value
                $0.inherited.remove(next.key)
                $0.writes += 1
                $0.lastWrite = Date()
            }
        }
    }
}
