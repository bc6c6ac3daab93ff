import AgentAPI

/// `nodectl ipam ...`.
public enum IPAMViews {
    /// `GET /v1/ipam`: one summary line per family, then one row per allocation.
    public static func list(_ ipam: JSON) -> String {
        var out = summary(ipam)
        let allocations = ipam["allocations"]?.arrayValue ?? []
        guard !allocations.isEmpty else { return out + "No allocations\n" }
        out += "\n" + allocationTable(allocations).render()
        return out
    }

    /// "IPv4: pod CIDR 10.0.1.0/24, gateway 10.0.1.1, 3 allocated, 250 free" per configured family.
    static func summary(_ ipam: JSON) -> String {
        var out = ""
        for (name, label) in [("ipv4", "IPv4"), ("ipv6", "IPv6")] {
            guard let family = ipam[name] else { continue }
            out +=
                "\(label): pod CIDR \(Cells.text(family["pod-cidr"])), gateway \(Cells.text(family["gateway"])), "
                + "\(Cells.text(family["allocated"])) allocated, \(Cells.text(family["free"])) free\n"
        }
        return out
    }

    static func allocationTable(_ allocations: [JSON]) -> Table {
        var table = Table(columns: ["IP", "Family", "Owner", "Pod", "Endpoint", "Expires"])
        for allocation in allocations {
            table.append([
                Cells.text(allocation["ip"]), Cells.text(allocation["family"]), Cells.text(allocation["owner"]),
                Cells.text(allocation["pod"]), Cells.text(allocation["endpoint"]), Cells.text(allocation["expires"]),
            ])
        }
        return table
    }

    /// `POST /v1/ipam` and `POST /v1/ipam/{ip}`: one row per address handed out.
    public static func allocated(_ response: JSON) -> String {
        var table = Table(columns: ["Family", "IP", "Gateway", "Pod CIDR", "Expiration UUID"])
        for name in ["ipv4", "ipv6"] {
            guard let detail = response[name] else { continue }
            table.append([
                name, Cells.text(detail["ip"]), Cells.text(detail["gateway"]),
                Cells.text(response["host-addressing"]?[name]?["alloc-range"]), Cells.text(detail["expiration-uuid"]),
            ])
        }
        return table.render()
    }

    /// `DELETE /v1/ipam/{ip}`.
    public static func released(_ response: JSON) -> String {
        let address = Cells.text(response["ip"])
        guard response["released"]?.boolValue == true else { return "\(address) was not allocated\n" }
        let owner = response["owner"]?.stringValue.map { " (owner \($0))" } ?? ""
        return "Released \(address)\(owner)\n"
    }

    /// `POST /v1/ipam/gc`.
    public static func garbage(_ response: JSON) -> String {
        let orphans = response["orphans"]?.arrayValue ?? []
        guard !orphans.isEmpty else { return "No orphaned allocations\n" }
        let dryRun = response["dry-run"]?.boolValue == true
        let head =
            dryRun
            ? "\(orphans.count) orphaned allocations (dry run: nothing released)\n"
            : "Released \(Cells.text(response["released"])) orphaned allocations\n"
        return head + "\n" + allocationTable(orphans).render()
    }
}
