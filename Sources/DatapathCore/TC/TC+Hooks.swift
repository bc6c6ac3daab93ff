extension Datapath {
    /// Attaches the object's programs named `ingress` and `egress` to the interface's two tc hooks, atomically
    /// replacing programs of ours already there.
    public func attachTC(ingress: String, egress: String, ifindex: Int32) throws {
        try TC.attach(program(ingress), ifindex: ifindex, point: .ingress)
        try TC.attach(program(egress), ifindex: ifindex, point: .egress)
    }
}

extension TC {
    /// Detaches ours from both hooks; a hook (or interface) already without them is nothing to do.
    public static func detachAll(ifindex: Int32) {
        for point in TCAttachPoint.allCases { _ = try? detach(ifindex: ifindex, point: point) }
    }
}
