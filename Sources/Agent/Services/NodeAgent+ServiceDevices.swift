import AgentAPI
import DatapathCore
import Glibc
import Synchronization

extension NodeAgent {
    /// The endpoint object's programs for an external interface (bpf/lib/lb_netdev.h, and NAT's).
    static let fromNetdev = "from_netdev"
    static let toNetdev = "to_netdev"

    /// Attaches from_netdev and to_netdev to each of `services.devices` (by default the NAT plugin's interface),
    /// so packets from outside the node reach NodePort, ExternalIPs and LoadBalancer frontends; returns the devices
    /// that carry them. The NAT plugin attaches the same programs to its interface: attaching replaces ours in place,
    /// so either order leaves one of each. A device that does not exist, or refuses the programs, is logged and left
    /// out. Nothing when the load balancer does not run. The programs stay attached when the agent stops, as the
    /// endpoints' do.
    @discardableResult
    func attachServiceDevices() -> [String] {
        guard serviceLoadBalancing != nil else { return [] }
        var attached: [String] = []
        for device in config.services.effectiveDevices(plugins: config.plugins) {
            let ifindex = if_nametoindex(device)
            guard ifindex != 0 else {
                logger.error("services.devices: no interface \(device) in the agent's network namespace")
                continue
            }
            do {
                try datapath.attachTC(ingress: Self.fromNetdev, egress: Self.toNetdev, ifindex: Int32(ifindex))
                attached.append(device)
            } catch {
                logger.error("services.devices: attaching to \(device) failed: \(error)")
            }
        }
        serviceDevices.withLock { $0 = attached }
        if !attached.isEmpty {
            logger.info("services translated for clients outside the node on \(attached.joined(separator: ", "))")
        }
        return attached
    }
}
