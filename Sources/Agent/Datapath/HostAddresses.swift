import DatapathCore

/// Addresses configured on interfaces of the agent's network namespace (the node), loopback and link-local left
/// out.
enum HostAddresses {
    static func current() -> [IPAddress] {
        InterfaceAddresses.current().map(\.address).filter { ip in
            switch ip.family {
            case .ipv4: ip.bytes[0] != 127
            case .ipv6: !ip.isLinkLocal && ip.bytes != [UInt8](repeating: 0, count: 15) + [1]
            }
        }
    }
}
