import DatapathCore
import Glibc

/// Addresses configured on interfaces of the agent's network namespace (the node).
enum HostAddresses {
    static func current() -> [IPAddress] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var result: [IPAddress] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr else { continue }
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                let v4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                let ip = IPAddress(family: .ipv4, bytes: withUnsafeBytes(of: v4) { Array($0) })
                if ip.bytes[0] != 127 { result.append(ip) }
            case AF_INET6:
                let v6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                let ip = IPAddress(family: .ipv6, bytes: withUnsafeBytes(of: v6) { Array($0) })
                if !ip.isLinkLocal && ip.bytes != [UInt8](repeating: 0, count: 15) + [1] { result.append(ip) }
            default:
                continue
            }
        }
        return result
    }
}
