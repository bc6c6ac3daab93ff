extension Datapath {
    /// Where this datapath's tcx links are pinned: under its pin root; nil for an unpinned datapath (tests), whose
    /// links live as long as the process.
    public var tcLinks: String? { root.isEmpty ? nil : TC.linkDirectory(pinRoot: root) }

    /// Attaches the object's programs named `ingress` and `egress` to the interface's two tc hooks, atomically
    /// replacing programs of ours already there. `deferringLinks`: without waiting for the kernel, on clsact
    /// filters moved onto tcx links once hooks stop changing (`tcxMoves`), for interfaces that come and go with
    /// endpoints.
    public func attachTC(ingress: String, egress: String, ifindex: Int32, deferringLinks: Bool = false) throws {
        for (name, point) in [(ingress, TCAttachPoint.ingress), (egress, .egress)] {
            if deferringLinks {
                try tcxMoves.attach(program(name), ifindex: ifindex, point: point)
            } else {
                try TC.attach(program(name), ifindex: ifindex, point: point, links: tcLinks)
            }
        }
    }

    /// Detaches ours from both hooks of the interface; a hook (or interface) already without them is nothing to do.
    public func detachTC(ifindex: Int32) {
        tcxMoves.detach(ifindex: ifindex)
    }
}

extension TC {
    /// Detaches ours from both hooks; a hook (or interface) already without them is nothing to do.
    public static func detachAll(ifindex: Int32, links: String?) {
        for point in TCAttachPoint.allCases { _ = try? detach(ifindex: ifindex, point: point, links: links) }
    }
}
