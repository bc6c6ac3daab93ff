import DatapathCore
import FoundationEssentials
import Glibc

/// What the plugin reads about the node's network namespace.
enum NodeNetwork {
    /// The IPv4 addresses of interface `name`, in the order the kernel lists them.
    static func ipv4Addresses(of name: String) -> [IPAddress] {
        InterfaceAddresses.current().filter { $0.interface == name && $0.address.family == .ipv4 }.map(\.address)
    }

    /// The range the node's own sockets pick ephemeral ports from (net.ipv4.ip_local_port_range of the agent's
    /// network namespace), nil when unreadable.
    static func ephemeralPorts() -> ClosedRange<UInt16>? {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        else { return nil }
        let numbers = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { UInt16($0) }
        guard numbers.count == 2, numbers[0] <= numbers[1] else { return nil }
        return numbers[0]...numbers[1]
    }
}
