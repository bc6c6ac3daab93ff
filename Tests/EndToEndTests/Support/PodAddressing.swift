/// A node's pod ranges and gateway, and the addresses its pods get when a test does not choose them. A node alone
/// and the nodes of a cluster differ only in this plan.
struct PodAddressing: Sendable {
    /// The ranges pod addresses come from (the node's pod CIDRs, as a cluster announces them).
    var ipv4CIDR: String
    var ipv6CIDR: String
    /// The pods' gateway: the same address on every host-side veth of the node, routed on-link from each pod.
    var gatewayIPv4: String
    var gatewayIPv6: String
    /// The first three octets of the IPv4 /24.
    var ipv4Network: String
    /// What a pod's host number (in hex) is appended to.
    var ipv6Prefix: String
    /// Added to the run-wide index to give the host number, so that no pod takes the gateway's address.
    var hostOffset: Int

    /// The addresses of the pod numbered `index` in its run.
    func ipv4(index: Int) -> String { "\(ipv4Network).\(index + hostOffset)" }
    func ipv6(index: Int) -> String { ipv6Prefix + String(index + hostOffset, radix: 16) }

    /// A node alone: pods 10.244.1.N and fd00:<tag>::1:N, the IPv4 gateway (10.244.0.1 by default) outside their
    /// range.
    static func singleNode(tag: String, gatewayIPv4: String = "10.244.0.1") -> PodAddressing {
        PodAddressing(
            ipv4CIDR: "10.244.1.0/24", ipv6CIDR: "fd00:\(tag)::/64", gatewayIPv4: gatewayIPv4,
            gatewayIPv6: "fd00:\(tag)::1", ipv4Network: "10.244.1", ipv6Prefix: "fd00:\(tag)::1:", hostOffset: 0)
    }

    /// Node `number` (1, 2, ...) of a cluster: 10.244.<number>.0/24 and fd00:<tag>:<number>::/64, each with its
    /// first address as the gateway (Cilium's router address) and pods from the second on.
    static func clusterNode(_ number: Int, tag: String) -> PodAddressing {
        let ipv6Network = "fd00:\(tag):\(String(number, radix: 16))::"
        return PodAddressing(
            ipv4CIDR: "10.244.\(number).0/24", ipv6CIDR: "\(ipv6Network)/64", gatewayIPv4: "10.244.\(number).1",
            gatewayIPv6: "\(ipv6Network)1", ipv4Network: "10.244.\(number)", ipv6Prefix: ipv6Network, hostOffset: 1)
    }
}
