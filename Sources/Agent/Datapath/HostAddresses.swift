import AgentAPI
import Netlink

/// Addresses configured on interfaces of the agent's network namespace (the node), loopback and link-local left
/// out.
enum HostAddresses {
    static func current() throws -> [IPAddress] {
        try NetlinkSocket().allAddresses().filter { ip in
            switch ip.family {
            case .ipv4: ip.bytes[0] != 127
            case .ipv6: !ip.isLinkLocal && ip.bytes != [UInt8](repeating: 0, count: 15) + [1]
            }
        }
    }
}
