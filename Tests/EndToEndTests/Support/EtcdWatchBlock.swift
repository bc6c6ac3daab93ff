import Foundation

/// Makes an agent's etcd watches go quiet without breaking them. Each request of the agent's etcd client opens a
/// connection of its own and closes it after the answer; only watches stay open. What etcd sends on the connections
/// that stay open is dropped in the agent's namespace (never the root namespace's firewall), so requests still go
/// through while the watches deliver nothing. `lift()` lets the kernel's retransmissions deliver what was held back.
final class EtcdWatchBlock {
    let netns: String
    let etcdPort: UInt16
    /// The local ports of the blocked connections.
    let ports: [UInt16]

    /// Blocks the connections to `etcdPort` that are open in `netns` now and still open 300 ms later.
    init(in netns: String, etcdPort: UInt16 = 2379) throws {
        self.netns = netns
        self.etcdPort = etcdPort
        let first = try Self.openConnections(in: netns, to: etcdPort)
        Thread.sleep(forTimeInterval: 0.3)
        ports = first.intersection(try Self.openConnections(in: netns, to: etcdPort)).sorted()
        guard !ports.isEmpty else { throw AgentHarnessError("no lasting connection to etcd in \(netns)") }
        for port in ports { try Shell.run(rule("-I", port)) }
    }

    /// Lets the held-back answers through again.
    func lift() throws {
        for port in ports { try Shell.run(rule("-D", port)) }
    }

    private func rule(_ operation: String, _ port: UInt16) -> [String] {
        [
            "ip", "netns", "exec", netns, "iptables", operation, "INPUT", "-p", "tcp", "--sport", String(etcdPort),
            "--dport", String(port), "-j", "DROP",
        ]
    }

    /// Local ports of the established TCP connections to `port` (`ss` prints "Recv-Q Send-Q local peer").
    private static func openConnections(in netns: String, to port: UInt16) throws -> Set<UInt16> {
        let listing = try Shell.run(["ip", "netns", "exec", netns, "ss", "-Htn", "state", "established"])
        var ports: Set<UInt16> = []
        for line in listing.split(separator: "\n") {
            let fields = line.split(whereSeparator: \.isWhitespace)
            guard fields.count >= 4, fields[3].hasSuffix(":\(port)"),
                let colon = fields[2].lastIndex(of: ":"),
                let local = UInt16(fields[2][fields[2].index(after: colon)...])
            else { continue }
            ports.insert(local)
        }
        return ports
    }
}
