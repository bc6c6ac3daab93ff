import AgentAPI
import Dispatch
import Glibc
import Logging
import Synchronization

/// Attachments that never wait for the kernel, moved onto tcx links once the hooks have stopped changing.
///
/// Creating or detaching a tcx link waits out an RCU grace period with the rtnl lock held: about 16 ms per link on
/// a two-core machine, where a clsact filter takes a fraction of a millisecond. An endpoint has two hooks, so
/// attaching through links capped endpoint creates at ~34 a second. Here `attach` puts a program on our clsact
/// filter (or swaps it into the hook's link, which waits for nothing), and a thread of its own moves hooks from
/// filters to links once `quiet` has passed without an attach, detach or `postpone()`: one hook at a time, stopping
/// as soon as hooks change again, so a burst of creates never queues behind a move and a steady node ends up on
/// links.
///
/// A move creates the link before it removes the filter, and a hook's tcx programs run before its filters (ours
/// never hand a packet on), so no packet meets neither. Only a filter of ours still running the program it was
/// given is moved: one replaced behind the agent's back, or on an interface gone, is left alone. A move that fails
/// leaves the hook on its filter, which enforces the same program, and says so in the log.
///
/// Moves run in the network namespace of the thread that first attached; an attach from another namespace goes to
/// a link at once.
public final class TCXMoves: Sendable {
    struct Hook: Hashable {
        var ifindex: Int32
        var point: TCAttachPoint
    }

    private struct State {
        var waiting: [Hook: BPFProgram] = [:]
        var lastChange = ContinuousClock.now
        /// The network namespace the mover thread runs in, once started.
        var namespace: UInt64?
        var stopped = false
    }

    let links: String?
    let quiet: Duration
    private let state = Mutex(State())
    /// Held while a hook changes in the kernel, so that a move never overlaps an attach or detach.
    private let changing = Mutex(())
    private let wake = DispatchSemaphore(value: 0)
    private let logger = Logger(label: "tc")

    /// Moves to links pinned in `links` (nil: held by this process) after `quiet` without a change.
    public init(links: String?, quiet: Duration = .seconds(1)) {
        self.links = links
        self.quiet = quiet
    }

    /// Attaches `program` at `point` of `ifindex`, replacing ours, without waiting for the kernel where a tcx link
    /// would: a hook with no link of ours gets a clsact filter, moved onto a link later.
    public func attach(_ program: BPFProgram, ifindex: Int32, point: TCAttachPoint) throws {
        let hook = Hook(ifindex: ifindex, point: point)
        try changing.withLock { _ in
            guard TC.usesTCX, moverNamespace() else {
                return try TC.attach(program, ifindex: ifindex, point: point, links: links)
            }
            let onFilter = try TC.attachWithoutWaiting(program, ifindex: ifindex, point: point, links: links)
            state.withLock { state in
                state.lastChange = .now
                state.waiting[hook] = onFilter ? program : nil
            }
            if onFilter { wake.signal() }
        }
    }

    /// Detaches ours from both hooks of the interface (see `TC.detachAll`), and forgets their moves.
    public func detach(ifindex: Int32) {
        changing.withLock { _ in
            let here = Self.currentNamespace()
            state.withLock { state in
                state.lastChange = .now
                guard state.namespace == here else { return }
                for point in TCAttachPoint.allCases { state.waiting[Hook(ifindex: ifindex, point: point)] = nil }
            }
            TC.detachAll(ifindex: ifindex, links: links)
        }
    }

    /// Starts the quiet period again, as a hook change does: for other work whose requests a move would slow.
    public func postpone() {
        state.withLock { $0.lastChange = .now }
    }

    /// How many hooks wait on a filter for their move.
    public var waiting: Int { state.withLock { $0.waiting.count } }

    /// Moves every waiting hook now, without a quiet period.
    public func moveAll() {
        while let (hook, program) = state.withLock({ $0.waiting.first.map { ($0.key, $0.value) } }) {
            move(hook, program, unlessChangedWithin: nil)
        }
    }

    /// Ends the mover thread; hooks still waiting stay on their filters, which enforce the same programs.
    public func stop() {
        state.withLock { $0.stopped = true }
        wake.signal()
    }

    /// Whether the calling thread is in the namespace moves run in, the mover started in its namespace when it
    /// has not started yet.
    private func moverNamespace() -> Bool {
        let here = Self.currentNamespace()
        let start = state.withLock { state -> Bool in
            guard state.namespace == nil else { return false }
            state.namespace = here
            return true
        }
        if start {
            let wake = wake
            // Holds the object only while it asks for or makes a move: it ends once the object is gone.
            BackgroundThread.start(name: "tcx-moves", scheduling: .batch) { [weak self] in
                while true {
                    guard let next = self?.nextMove() else { return }
                    switch next {
                    case .sleep(let duration):
                        let nanoseconds = duration.map { Int($0 / .nanoseconds(1)) } ?? 60_000_000_000
                        _ = wake.wait(timeout: .now() + .nanoseconds(nanoseconds))
                    case .move(let hook, let program):
                        self?.move(hook, program, unlessChangedWithin: self?.quiet)
                    }
                }
            }
        }
        return state.withLock { $0.namespace == here }
    }

    private enum Next {
        case sleep(Duration?)
        case move(Hook, BPFProgram)
    }

    /// What the mover does next; nil once stopped.
    private func nextMove() -> Next? {
        state.withLock { state in
            if state.stopped { return nil }
            guard let (hook, program) = state.waiting.first.map({ ($0.key, $0.value) }) else { return .sleep(nil) }
            let since = ContinuousClock.now - state.lastChange
            return since < quiet ? .sleep(quiet - since) : .move(hook, program)
        }
    }

    /// Moves the hook from its filter to a link, unless it no longer waits with this program, or (with `quiet`) a
    /// hook changed within it.
    private func move(_ hook: Hook, _ program: BPFProgram, unlessChangedWithin quiet: Duration?) {
        changing.withLock { _ in
            let current = state.withLock { state in
                state.waiting[hook] === program
                    && quiet.map { ContinuousClock.now - state.lastChange >= $0 } ?? true
            }
            guard current else { return }
            defer { state.withLock { if $0.waiting[hook] === program { $0.waiting[hook] = nil } } }
            guard let id = try? program.id(), TC.filterProgramID(ifindex: hook.ifindex, point: hook.point) == id
            else { return }
            do {
                try TC.attach(program, ifindex: hook.ifindex, point: hook.point, links: links)
            } catch {
                logger.warning(
                    "moving a tc hook onto a tcx link failed; it stays on its clsact filter",
                    metadata: [
                        "ifindex": "\(hook.ifindex)", "hook": "\(hook.point.rawValue)", "error": "\(error)",
                    ])
            }
        }
    }

    private static func currentNamespace() -> UInt64 {
        var info = stat()
        return stat("/proc/thread-self/ns/net", &info) == 0 ? UInt64(info.st_ino) : 0
    }
}
