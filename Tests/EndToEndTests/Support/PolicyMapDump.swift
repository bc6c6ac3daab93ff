import AgentAPI
import Foundation

/// An endpoint policy map as the kernel holds it, read with `bpftool map dump pinned` and decoded from
/// `struct na_policy_key` / `na_policy_value` (nodeagent_abi.h) independently of the agent's own decoder.
enum PolicyMapDump {
    struct Row: Hashable, CustomStringConvertible {
        var egress: Bool
        var identity: Int64
        /// nil: any protocol.
        var proto: String?
        var port: Int64?
        var endPort: Int64?
        var deny: Bool
        var ruleID: Int64

        var description: String {
            "\(egress ? "egress" : "ingress") id=\(identity) \(proto ?? "ANY") \(port.map(String.init) ?? "*")"
                + "-\(endPort.map(String.init) ?? "*") \(deny ? "deny" : "allow") rule=\(ruleID)"
        }

        init(apiEntry entry: JSON) {
            egress = entry["direction"] == "egress"
            identity = entry["identity"]?.intValue ?? -1
            let proto = entry["protocol"]?.stringValue
            self.proto = proto == "ANY" ? nil : proto
            port = entry["port"]?.intValue
            endPort = entry["end-port"]?.intValue
            deny = entry["deny"]?.boolValue ?? false
            ruleID = entry["rule-id"]?.intValue ?? -1
        }

        init(key: [UInt8], value: [UInt8]) {
            let prefix = Int(le32(key, 0))
            identity = Int64(UInt32(key[4]) << 24 | UInt32(key[5]) << 16 | UInt32(key[6]) << 8 | UInt32(key[7]))
            egress = key[8] == 1
            let names: [UInt8: String] = [1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"]
            proto = prefix > 40 ? names[key[9]] ?? "\(key[9])" : nil
            let portBits = prefix - 48
            if portBits > 0 {
                let first = Int64(key[10]) << 8 | Int64(key[11])
                port = first
                endPort = first + (Int64(1) << (16 - portBits)) - 1
            }
            ruleID = Int64(le32(value, 0))
            deny = le32(value, 4) & 1 != 0
        }
    }

    /// Endpoint `id`'s policy: its trie (`na_pol_<id>`) and, when it has one, its hash of full-length keys
    /// (`na_polh_<id>`).
    static func read(endpoint id: Int, root: String) throws -> [Row] {
        let hash = "\(root)/na_polh_\(String(format: "%05d", id))"
        let exact = FileManager.default.fileExists(atPath: hash) ? try read(pin: hash) : []
        return try read(pin: "\(root)/na_pol_\(String(format: "%05d", id))") + exact
    }

    static func read(pin: String) throws -> [Row] {
        try BPFTool.dump(pin).map { entry in
            guard entry.key.count >= 12, entry.value.count >= 8 else {
                throw AgentHarnessError("unexpected policy map entry \(entry) in \(pin)")
            }
            return Row(key: entry.key, value: entry.value)
        }
    }

    private static func le32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }
}
