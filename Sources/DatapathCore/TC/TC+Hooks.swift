extension Datapath {
    /// Where this datapath's tcx links are pinned: under its pin root; nil for an unpinned datapath (tests), whose
    /// links live as long as the process.
    public var tcLinks: String? { root.isEmpty ? nil : TC.linkDirectory(pinRoot: root) }

    /// Attaches the object's programs named `ingress` and `egress` to the interface's two tc hooks, atomically
    /// replacing programs of ours already there.
    public func attachTC(ingress: String, egress: String, ifindex: Int32) throws {
        try TC.attach(program(ingress), ifindex: ifindex, point: .ingress, links: tcLinks)
        try TC.attach(program(egress), ifindex: ifindex, point: .egress, links: tcLinks)
    }

    /// Detaches ours from both hooks of the interface; a hook (or interface) already without them is nothing to do.
    public func detachTC(ifindex: Int32) {
        TC.detachAll(ifindex: ifindex, links: tcLinks)
    }
}

extension TC {
    /// Detaches ours from both hooks; a hook (or interface) already without them is nothing to do.
    public static func detachAll(ifindex: Int32, links: String?) {
        for point in TCAttachPoint.allCases { _ = try? detach(ifindex: ifindex, point: point, links: links) }
    }
}
