import AgentAPI

/// `nodectl status`: the health summary.
public enum StatusView {
    public static func render(_ health: JSON) -> String {
        var fields: [(name: String, value: String)] = [
            ("Status", Cells.text(health["status"])),
            ("Version", Cells.text(health["version"])),
            ("Kernel", PreflightView.summary(health["kernel"])),
        ]
        if let bpffs = health["bpffs"] {
            let mounted = bpffs["mounted"]?.boolValue
            let state = mounted.map { $0 ? "mounted" : "NOT mounted" } ?? "unknown"
            fields.append(("BPF filesystem", "\(Cells.text(bpffs["root"])) (\(state))"))
        }
        if let uptime = health["uptime-seconds"]?.intValue {
            fields.append(("Uptime", formatDuration(seconds: uptime)))
        }
        fields.append(("Endpoints", Cells.text(health["endpoints"])))
        fields.append(("Policy revision", Cells.text(health["policy-revision"])))
        if let datapath = health["datapath"] {
            let interval = datapath["drop-event-interval"]?.stringValue
            let drops = interval.map { $0 == "0s" || $0 == "0ms" ? "every drop" : "one per flow every \($0)" }
            fields.append(("Drop events", drops ?? "unknown"))
            fields.append(("Allow localhost", Cells.text(datapath["allow-localhost"])))
            fields.append(("Host routing", Cells.text(datapath["host-routing"])))
        }

        if let services = health["services"] {
            let running = services["load-balancer"]?.stringValue == "running"
            fields.append(
                (
                    "Load balancer",
                    running
                        ? "running at cgroup \(Cells.text(services["cgroup-root"])) "
                            + "(\(Cells.text(services["backend-selection"])) backend selection)"
                        : "not running (services.enabled \(Cells.text(services["enabled"])))"
                ))
            let devices = services["devices"]?.arrayValue?.compactMap(\.stringValue) ?? []
            fields.append(("Service devices", devices.isEmpty ? "none" : devices.joined(separator: ", ")))
        }
        if let l7 = health["l7"] {
            fields.append(
                (
                    "HTTP rules",
                    l7["state"]?.stringValue == "running"
                        ? "enforced in the kernel (sockops at cgroup \(Cells.text(l7["cgroup-root"])))"
                        : "refused: \(Cells.text(l7["reason"]))"
                ))
        }
        if let cluster = health["cluster"] { fields += ClusterViews.healthFields(cluster) }

        var out = Cells.fieldList(fields)
        if let cluster = health["cluster"] { out += ClusterViews.members(cluster) }
        let plugins = health["plugins"]?.arrayValue ?? []
        if plugins.isEmpty {
            out += "Plugins:          none\n"
        } else {
            out += "Plugins:\n"
            var table = Table(columns: ["Name", "Enabled", "State", "Detail"])
            for plugin in plugins {
                table.append([
                    Cells.text(plugin["name"]), Cells.text(plugin["enabled"]), Cells.text(plugin["state"]),
                    detail(plugin["detail"]),
                ])
            }
            out += table.render().split(separator: "\n").map { "  \($0)\n" }.joined()
        }
        return out
    }

    /// A plugin's detail object as "key=value" pairs on one line.
    static func detail(_ value: JSON?) -> String {
        guard let value, let members = value.objectValue, !members.isEmpty else { return Cells.text(value) }
        return Cells.flatten(value).map { "\($0.name)=\($0.value)" }.joined(separator: " ")
    }

    /// 12 → "12s", 3723 → "1h2m3s", 90061 → "1d1h1m1s".
    public static func formatDuration(seconds: Int64) -> String {
        guard seconds > 0 else { return "\(max(seconds, 0))s" }
        var rest = seconds
        var out = ""
        for (unit, size) in [("d", Int64(86400)), ("h", 3600), ("m", 60)] where rest >= size || !out.isEmpty {
            out += "\(rest / size)\(unit)"
            rest %= size
        }
        return out + "\(rest)s"
    }
}
