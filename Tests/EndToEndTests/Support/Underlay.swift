import Foundation

/// The network between the nodes of a cluster (and its etcd members): a Linux bridge `br0` in a namespace of its own,
/// `na<tag>-underlay`, with one veth per attached namespace. Attached namespaces share 192.168.86.0/24 and
/// fd02:<tag>::/64 and reach each other directly, as machines on one L2 segment do. The underlay namespace holds
/// host 254 itself, so the harness can look at the cluster from outside every node.
///
/// Nothing routes pod traffic here by itself: routes to other nodes' pod CIDRs are the agent's job (or a test's,
/// by hand, through `ClusterTopology.addPodCIDRRoutes()`).
final class Underlay: Sendable {
    /// The first three octets of the IPv4 /24: a range no other part of the harness uses (pods are 10.244/16,
    /// external hosts 172.31/16 and 198.51.100/24).
    static let ipv4Network = "192.168.86"
    static let bridge = "br0"
    /// The host number of the underlay namespace's own address on the bridge.
    static let observerHost = 254

    let netns: String
    let tag: String
    /// What a host number (in hex) is appended to for the IPv6 address.
    let ipv6Prefix: String
    /// The underlay namespace's own addresses on the bridge.
    let ipv4: String
    let ipv6: String

    /// Creates the underlay namespace and its bridge in `run`; on failure the caller destroys the run.
    init(in run: TestRun) throws {
        tag = run.tag
        netns = "na\(run.tag)-underlay"
        ipv6Prefix = "fd02:\(run.tag)::"
        ipv4 = "\(Underlay.ipv4Network).\(Underlay.observerHost)"
        ipv6 = ipv6Prefix + String(Underlay.observerHost, radix: 16)
        try run.createNamespace(netns)
        // Without a multicast querier on the segment, snooping could stop forwarding neighbour solicitations.
        try Netns.ip(
            netns,
            [
                "link set lo up",
                "link add \(Underlay.bridge) type bridge mcast_snooping 0",
                "link set \(Underlay.bridge) up",
                "address add \(ipv4)/24 dev \(Underlay.bridge)",
                "address add \(ipv6)/64 dev \(Underlay.bridge) nodad",
            ])
    }

    /// The port for host number `host` (1...253), not yet attached to any namespace.
    func reserve(host: Int) -> UnderlayPort {
        UnderlayPort(
            underlayNetns: netns, bridgeInterface: "ul\(tag)h\(host)", ipv4: "\(Underlay.ipv4Network).\(host)",
            ipv6: ipv6Prefix + String(host, radix: 16))
    }
}

/// One namespace's link to the underlay: `eth0` inside it, a bridge port `ul<tag>h<host>` in the underlay.
struct UnderlayPort: Sendable {
    /// The interface's name inside the attached namespace: what a node's real uplink is called.
    static let interface = "eth0"

    let underlayNetns: String
    let bridgeInterface: String
    let ipv4: String
    let ipv6: String

    /// Wires namespace `netns` to the bridge and gives its `eth0` this port's addresses (/24 and /64, so that every
    /// other attached namespace is on-link).
    func attach(_ netns: String) throws {
        try Netns.ip(
            underlayNetns, ["link add \(bridgeInterface) type veth peer name \(UnderlayPort.interface) netns \(netns)"])
        try Netns.ip(
            underlayNetns, ["link set \(bridgeInterface) master \(Underlay.bridge)", "link set \(bridgeInterface) up"])
        try Netns.ip(
            netns,
            [
                "link set lo up", "link set \(UnderlayPort.interface) up",
                "address add \(ipv4)/24 dev \(UnderlayPort.interface)",
                "address add \(ipv6)/64 dev \(UnderlayPort.interface) nodad",
            ])
    }
}
