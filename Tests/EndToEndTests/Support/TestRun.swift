import Foundation
import Glibc

/// What one test builds, whatever its shape (a single node or a cluster): the run tag every name carries, the
/// run marker, the namespaces in creation order, the numbering of namespaces and interfaces, and the cleanups
/// that must run before the namespaces go. `destroy()` removes all of it.
///
/// State changes go through `state`'s lock, which is what makes the class Sendable.
final class TestRun: @unchecked Sendable {
    /// Four hex digits that every name created for this run contains.
    let tag: String

    private struct State {
        var namespaces: [String] = []  // in creation order
        var cleanups: [@Sendable () -> Void] = []
        var destroyed = false
        var lastIndex = 0  // numbers namespaces and interfaces
    }
    private let state = Locked(State())

    /// Sweeps abandoned runs, then claims `tag` (a fresh one by default) with a run marker.
    init(tag: String? = nil) throws {
        _ = Shell.ignoreSIGPIPE
        Topology.sweepAbandoned()
        self.tag = try tag ?? Topology.freshTag()
        try RunMarker.claim(self.tag)
    }

    deinit { destroy() }

    /// Every namespace created so far, in creation order.
    var namespaces: [String] { state.current.namespaces }

    /// `/tmp/na<tag>-<name>`: a directory the sweep of this tag removes.
    func temporaryDirectory(_ name: String) throws -> String {
        let path = "\(Topology.temporaryDirectory)/na\(tag)-\(name)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The next number for a namespace or interface name; unique within the run.
    func nextIndex() -> Int {
        state.withLock { state in
            state.lastIndex += 1
            return state.lastIndex
        }
    }

    /// Creates namespace `name` (which must carry the tag) with duplicate address detection off; `destroy()`
    /// deletes it.
    func createNamespace(_ name: String) throws {
        try Netns.create(name)
        state.withLock { $0.namespaces.append(name) }
        try Netns.disableDuplicateAddressDetection(in: name)
    }

    /// Registers work to run at the start of `destroy()`, newest first: closing sockets (which keep their
    /// namespace alive), stopping an agent before its namespace disappears.
    func onDestroy(_ block: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.destroyed { return true }
            state.cleanups.append(block)
            return false
        }
        if runNow { block() }
    }

    /// Runs the registered cleanups, deletes every namespace of this run and sweeps anything else carrying its
    /// tag. Safe to call more than once and after a partial setup; returns what could not be removed.
    @discardableResult
    func destroy() -> [String] {
        let (cleanups, namespaces) = state.withLock { state in
            defer {
                state.cleanups = []
                state.namespaces = []
                state.destroyed = true
            }
            return (state.cleanups, state.namespaces)
        }
        for cleanup in cleanups.reversed() { cleanup() }
        var problems: [String] = []
        for name in namespaces.reversed() {
            do { try Netns.delete(name) } catch { problems.append("\(error)") }
        }
        problems += Topology.sweep(tag: tag)
        return problems
    }

    /// What still exists with this run's tag in its name: namespaces, interfaces in the root namespace (there
    /// should never be any), BPF pin directories, temporary directories and the run marker.
    func leftovers() -> [String] { Topology.leftovers(tag: tag) }
}
