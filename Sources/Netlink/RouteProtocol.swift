/// Who installed a route: the kernel's `rtm_protocol`, which it stores and reports back without interpreting it
/// (linux/rtnetlink.h: values above `RTPROT_STATIC` are "not interpreted by kernel, just passed from user and back
/// as is"). A routing daemon marks its routes with its own value so it can find them again, after a restart too,
/// and never touches anyone else's.
public struct RouteProtocol: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Routes the kernel derives from addresses (`proto kernel`).
    public static let kernel = RouteProtocol(rawValue: 2)
    /// Routes set up at boot or by a tool without a protocol of its own (`proto boot`, `ip route`'s default).
    public static let boot = RouteProtocol(rawValue: 3)
    /// Routes an administrator installed (`proto static`).
    public static let `static` = RouteProtocol(rawValue: 4)
    /// nodeagent's routes to the pod CIDRs of other nodes (`ip route show proto 78`). 78 is in no list: not among
    /// the kernel's `RTPROT_*` values or iproute2's `rt_protos`, and not Calico's 80. Cilium marks its node routes
    /// `proto kernel` so that systemd-networkd (`ManageForeignRoutes=yes`) leaves them alone, but then cannot tell
    /// them from the kernel's own; a node running networkd sets `ManageForeignRoutes=no` instead.
    public static let nodeagent = RouteProtocol(rawValue: 78)

    public var description: String { String(rawValue) }
}
