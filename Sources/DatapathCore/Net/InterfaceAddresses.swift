import Glibc

/// The IPv4 and IPv6 addresses configured on the interfaces of the calling thread's network namespace, as
/// getifaddrs lists them (kernel order).
public enum InterfaceAddresses {
    public struct Entry: Sendable, Equatable {
        public var interface: String
        public var address: IPAddress
    }

    public static func current() -> [Entry] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var result: [Entry] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr else { continue }
            let ip: IPAddress
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                let v4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                ip = IPAddress(family: .ipv4, bytes: withUnsafeBytes(of: v4) { Array($0) })
            case AF_INET6:
                let v6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                ip = IPAddress(family: .ipv6, bytes: withUnsafeBytes(of: v6) { Array($0) })
            default:
                continue
            }
            result.append(Entry(interface: String(cString: entry.pointee.ifa_name), address: ip))
        }
        return result
    }
}
