import AgentAPI
import Dispatch
import FoundationEssentials
import Logging
import Synchronization

/// Closes connections whose request the kernel refused. The verdict answers the 403 with `Connection: close` and
/// drops every later byte, so the connection is of no further use; but when the request arrived before the server
/// accepted the connection, the kernel has no socket to send the 403 through yet and the client would wait for an
/// answer that never comes. So a moment after each refusal the agent destroys the server's socket (sock_diag):
/// the client reads the 403 it already has, or a reset, and is never left hanging. This runs beside the request
/// path, on the flows the kernel reports; the verdict itself is the kernel's.
final class L7DeniedConnections: Sendable {
    /// Long enough for a delivered 403 to be read by the client before the reset follows it.
    static let delay: DispatchTimeInterval = .milliseconds(200)

    private let pending = Mutex<Set<L7ConnectionReset.Connection>>([])
    private let scheduled = Atomic<Bool>(false)
    private let queue = DispatchQueue(label: "nodeagent.l7-denied-connections")
    private let closed = Atomic<UInt64>(0)
    private let logger = Logger(label: "l7")

    /// The refused requests among `flows` (HTTP decisions with verdict DROPPED): their connections close soon.
    func closeLater(_ flows: [Flow]) {
        let connections = flows.compactMap { flow -> L7ConnectionReset.Connection? in
            guard flow.l7 != nil, flow.verdict == .dropped else { return nil }
            return L7ConnectionReset.Connection(
                local: flow.destination.ip, localPort: flow.destination.port, remote: flow.source.ip,
                remotePort: flow.source.port)
        }
        guard !connections.isEmpty else { return }
        pending.withLock { $0.formUnion(connections) }
        // One sweep per delay however many refusals come in: a flood of refused requests costs one search.
        guard !scheduled.exchange(true, ordering: .acquiringAndReleasing) else { return }
        queue.asyncAfter(deadline: .now() + Self.delay) { [self] in
            scheduled.store(false, ordering: .releasing)
            let batch = pending.withLock { pending in
                defer { pending.removeAll() }
                return pending
            }
            let count = L7ConnectionReset.reset(batch)
            closed.add(UInt64(count), ordering: .relaxed)
            logger.debug(
                "closed connections of refused HTTP requests",
                metadata: ["refused": "\(batch.count)", "closed": "\(count)"])
        }
    }

    /// Server sockets destroyed so far.
    var closedConnections: UInt64 { closed.load(ordering: .relaxed) }
}
