import DatapathCore
import Foundation
import Glibc

/// What the plugin reads about the node's network namespace.
enum NodeNetwork {
    /// The IPv4 addresses of interface `name`, in the order the kernel lists them.
    static func ipv4Addresses(of name: String) -> [IPAddress] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var result: [IPAddress] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr, Int32(address.pointee.sa_family) == AF_INET,
                String(cString: entry.pointee.ifa_name) == name
            else { continue }
            let v4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            result.append(IPAddress(family: .ipv4, bytes: withUnsafeBytes(of: v4) { Array($0) }))
        }
        return result
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

/// The clock of NAT lifetimes: the datapath stamps `bpf_ktime_get_ns() / 1e9 + lifetime`, and bpf_ktime_get_ns
/// reads CLOCK_MONOTONIC, so the agent compares against the same clock in the same unit.
enum MonotonicClock {
    static func seconds() -> UInt32 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt32(truncatingIfNeeded: now.tv_sec)
    }
}
