import FoundationEssentials

/// The IPv4 default route of the calling thread's network namespace, as `/proc/net/route` lists it (the file
/// follows the reader's namespace).
public enum DefaultRoute {
    /// The interface holding the default route with the lowest metric; nil when there is none.
    public static func interface(routeTable path: String = "/proc/net/route") -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var best: (name: String, metric: Int)?
        // Iface Destination Gateway Flags RefCnt Use Metric Mask ...; addresses in hex, host byte order.
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 8, fields[1] == "00000000", fields[7] == "00000000",
                let flags = Int(fields[3], radix: 16), flags & 0x1 != 0,  // RTF_UP
                let metric = Int(fields[6])
            else { continue }
            if best.map({ metric < $0.metric }) ?? true { best = (String(fields[0]), metric) }
        }
        return best?.name
    }

    /// The first IPv4 address of the default route's interface.
    public static func interfaceAddress() -> IPAddress? {
        guard let name = interface() else { return nil }
        return InterfaceAddresses.current().first { $0.interface == name && $0.address.family == .ipv4 }?.address
    }
}
