import Foundation

/// Several nodes that share an underlay, for tests of the cluster mode: node N (1-based) is a `Topology` with
/// namespace `na<tag>-nodeN`, pods in 10.244.N.0/24 and fd00:<tag>:N::/64 behind gateway 10.244.N.1 /
/// fd00:<tag>:N::1, and `eth0` on the underlay at 192.168.86.N / fd02:<tag>::N. One run holds everything, so
/// `destroy()` (or the sweep of an abandoned run) removes nodes, pods, underlay and etcd members alike.
///
/// A pod reaches only the pods of its own node until someone routes the other nodes' pod CIDRs: in the cluster
/// mode the agent does it; `addPodCIDRRoutes()` does it by hand for tests that run without an agent.
final class ClusterTopology: Sendable {
    let run: TestRun
    let underlay: Underlay
    /// The nodes in order: `nodes[0]` is node1.
    let nodes: [Topology]

    var tag: String { run.tag }

    private let diagnosticSources = Locked<[@Sendable () -> String]>([])

    /// Creates the underlay and `nodeCount` nodes; whatever was created before a failure is removed again.
    init(nodes nodeCount: Int = 3) throws {
        precondition((1...99).contains(nodeCount), "node numbers are the third octet of the pod CIDR")
        run = try TestRun()
        do {
            underlay = try Underlay(in: run)
            nodes = try (1...nodeCount).map { [run, underlay] number in
                try Topology(clusterNode: number, in: run, underlay: underlay)
            }
        } catch {
            run.destroy()
            throw error
        }
    }

    /// The routes the agent installs in cluster mode, added by hand: on every node, each other node's pod CIDRs
    /// via that node's underlay addresses. For tests of the harness itself, which run no agent.
    func addPodCIDRRoutes() throws {
        for node in nodes {
            var commands: [String] = []
            for peer in nodes where peer.nodeNetns != node.nodeNetns {
                guard let port = peer.underlay else { continue }
                commands += [
                    "route add \(peer.addressing.ipv4CIDR) via \(port.ipv4) dev \(UnderlayPort.interface)",
                    "route add \(peer.addressing.ipv6CIDR) via \(port.ipv6) dev \(UnderlayPort.interface)",
                ]
            }
            try Netns.ip(node.nodeNetns, commands)
        }
    }

    /// Registers a description of some part of the cluster (an etcd member's log, an agent's stderr) for
    /// `diagnostics()`.
    func addDiagnostics(_ source: @escaping @Sendable () -> String) {
        diagnosticSources.withLock { $0.append(source) }
    }

    /// What the registered parts say about themselves, for the message of a failed test; read it before
    /// `destroy()`, which removes the logs.
    func diagnostics() -> String {
        diagnosticSources.current.map { $0() }.joined(separator: "\n")
    }

    /// Registers work to run at the start of `destroy()`, newest first.
    func onDestroy(_ block: @escaping @Sendable () -> Void) { run.onDestroy(block) }

    /// Runs the registered cleanups (stopping agents and etcd members), deletes every namespace of the cluster and
    /// sweeps anything else carrying its tag. Safe to call more than once; returns what could not be removed.
    @discardableResult
    func destroy() -> [String] { run.destroy() }

    /// What still exists with the cluster's tag in its name.
    func leftovers() -> [String] { run.leftovers() }
}
