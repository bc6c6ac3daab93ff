import DatapathCore
import Foundation
import Glibc

/// `nodeagent cleanup`: removes the agent's tc programs from every interface, its pinned maps, its socket and state.
public struct Cleaner {
    let config: AgentConfig

    public init(config: AgentConfig) { self.config = config }

    public func run(keepState: Bool) -> String {
        var detached = 0
        for (index, _) in Self.interfaces() {
            for point in TCAttachPoint.allCases where TC.isAttached(ifindex: index, point: point) {
                if (try? TC.detach(ifindex: index, point: point)) == true { detached += 1 }
            }
        }
        let pins = (try? FileManager.default.contentsOfDirectory(atPath: config.bpfRoot).count) ?? 0
        BPFFS.removeAll(root: config.bpfRoot)
        unlink(config.socketPath)
        if !keepState { try? FileManager.default.removeItem(atPath: config.stateDir) }
        return "removed \(detached) tc programs, \(pins) pinned objects under \(config.bpfRoot)"
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
