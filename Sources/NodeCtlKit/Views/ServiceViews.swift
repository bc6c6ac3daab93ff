import AgentAPI

/// `nodectl service ...`, laid out as `cilium-dbg service list`: one row per backend, `N => ip:port/proto (state)`,
/// the service's own columns on its first row only.
public enum ServiceViews {
    /// `GET /v1/service`: ID, frontend, type, backends; then one line per service the datapath does not hold.
    public static func list(_ services: JSON) -> String {
        let sorted = (services.arrayValue ?? []).sorted { id($0) < id($1) }
        guard !sorted.isEmpty else { return "No services\n" }
        var table = Table(columns: ["ID", "Frontend", "Service Type", "Backend"])
        for service in sorted {
            let spec = service["spec"] ?? .null
            let backends = backendLines(spec)
            table.append([
                Cells.text(spec["id"]), frontend(spec), Cells.text(spec["flags"]?["type"]),
                backends.first ?? Cells.none,
            ])
            for line in backends.dropFirst() { table.append(["", "", "", line]) }
        }
        return table.render() + notRealized(sorted)
    }

    /// One service: its fields, then its backends.
    public static func detail(_ service: JSON) -> String {
        let spec = service["spec"] ?? .null
        let flags = spec["flags"] ?? .null
        var fields: [(name: String, value: String)] = [
            ("ID", Cells.text(spec["id"])),
            ("Frontend", "\(frontend(spec)) (\(Cells.text(spec["frontend-address"]?["scope"])))"),
            ("Type", Cells.text(flags["type"])),
        ]
        if flags["name"] != nil || flags["namespace"] != nil {
            fields.append(("Name", "\(Cells.text(flags["namespace"]))/\(Cells.text(flags["name"]))"))
        }
        var affinity = Cells.text(flags["session-affinity"])
        if let timeout = flags["session-affinity-timeout"]?.intValue { affinity += " (\(timeout)s)" }
        fields.append(("Session affinity", affinity))
        fields.append(("Realized", Cells.text(service["status"]?["realized"])))
        if let message = service["status"]?["message"]?.stringValue { fields.append(("Message", message)) }
        let backends = backendLines(spec, weights: true)
        fields.append(("Backends", backends.isEmpty ? "none" : "\(backends.count)"))
        return Cells.fieldList(fields) + backends.map { "  \($0)\n" }.joined()
    }

    /// `DELETE /v1/service/{id}`.
    public static func deleted(_ service: JSON) -> String {
        let spec = service["spec"] ?? .null
        return "Deleted service \(Cells.text(spec["id"])) (\(frontend(spec)))\n"
    }

    /// "10.96.0.10:80/TCP", "[fd00::a]:53/UDP".
    static func frontend(_ spec: JSON) -> String {
        let address = spec["frontend-address"] ?? .null
        return "\(hostPort(address))/\(Cells.text(address["protocol"]))"
    }

    /// "1 => 10.0.0.7:80/TCP (active)", numbered from 1 in the order the service lists them.
    static func backendLines(_ spec: JSON, weights: Bool = false) -> [String] {
        let proto = Cells.text(spec["frontend-address"]?["protocol"])
        return (spec["backend-addresses"]?.arrayValue ?? []).enumerated().map { index, backend in
            let weight = weights ? ", weight \(Cells.text(backend["weight"]))" : ""
            return "\(index + 1) => \(hostPort(backend))/\(proto) (\(Cells.text(backend["state"]))\(weight))"
        }
    }

    private static func hostPort(_ address: JSON) -> String {
        let ip = Cells.text(address["ip"])
        let port = Cells.text(address["port"])
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    private static func notRealized(_ services: [JSON]) -> String {
        let lines = services.filter { $0["status"]?["realized"]?.boolValue == false }.map { service in
            let message = service["status"]?["message"]?.stringValue.map { ": \($0)" } ?? ""
            return "Service \(Cells.text(service["spec"]?["id"])) is not realized\(message)\n"
        }
        return lines.isEmpty ? "" : "\n" + lines.joined()
    }

    private static func id(_ service: JSON) -> Int64 { service["spec"]?["id"]?.intValue ?? 0 }
}
