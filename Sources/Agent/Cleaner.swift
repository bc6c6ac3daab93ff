import DatapathCore
import FoundationEssentials
import Glibc

/// `nodeagent cleanup`: removes the agent's tc programs from every interface, its pinned maps, its socket and state.
public struct Cleaner {
    let config: AgentConfig

    public init(config: AgentConfig) { self.config = config }

    /// Removes everything, or nothing when the bpf root or (unless kept) the state directory is not the agent's
    /// (see `Ownership`): the error says which and why.
    public func run(keepState: Bool) throws -> String {
        var refusals: [String] = []
        if let reason = Ownership.refusal(bpfRoot: config.bpfRoot) {
            refusals.append("bpf root \(config.bpfRoot) \(reason)")
        }
        if !keepState, let reason = Ownership.refusal(stateDirectory: config.stateDir) {
            refusals.append("state directory \(config.stateDir) \(reason)")
        }
        guard refusals.isEmpty else {
            throw AgentError(
                code: .invalidField, status: 400,
                message: "refusing to clean up, nothing was removed: " + refusals.joined(separator: "; "))
        }
        var detached = 0
        let links = TC.linkDirectory(pinRoot: config.bpfRoot)
        for (index, _) in Self.interfaces() {
            for point in TCAttachPoint.allCases where TC.isAttached(ifindex: index, point: point, links: links) {
                if (try? TC.detach(ifindex: index, point: point, links: links)) == true { detached += 1 }
            }
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: config.bpfRoot)) ?? []
        let pins = entries.filter { $0 != Ownership.bpfMarkerName }.count
        // The socket load balancer's links before the rest: unpinning them detaches its hooks from the cgroup,
        // wherever the configuration put them.
        var balancerDetached = false
        if FileManager.default.fileExists(atPath: SocketLoadBalancing.linkDirectory(pinRoot: config.bpfRoot)) {
            try SocketLoadBalancing.detach(pinRoot: config.bpfRoot)
            balancerDetached = true
        }
        // Likewise the HTTP enforcement's sockops link; its sockhash lets go of parser, verdict and sockets with
        // its last pin.
        var l7Detached = false
        if FileManager.default.fileExists(atPath: L7Enforcement.linkDirectory(pinRoot: config.bpfRoot)) {
            try L7Enforcement.detach(pinRoot: config.bpfRoot)
            l7Detached = true
        }
        BPFFS.removeAll(root: config.bpfRoot)
        // Only a socket: the path is configuration, and may name something else by mistake.
        var info = stat()
        if lstat(config.socketPath, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK { unlink(config.socketPath) }
        if !keepState { try? FileManager.default.removeItem(atPath: config.stateDir) }
        return "removed \(detached) tc programs, \(pins) pinned objects under \(config.bpfRoot)"
            + (balancerDetached ? ", the socket load balancer's cgroup hooks" : "")
            + (l7Detached ? ", the HTTP enforcement's cgroup hook" : "")
            + (keepState ? "" : ", state in \(config.stateDir)")
    }

    static func interfaces() -> [(Int32, String)] {
        guard let list = if_nameindex() else { return [] }
        defer { if_freenameindex(list) }
        var result: [(Int32, String)] = []
        var cursor = list
        while cursor.pointee.if_index != 0 {
            result.append((Int32(cursor.pointee.if_index), String(cString: cursor.pointee.if_name)))
            cursor += 1
        }
        return result
    }
}
