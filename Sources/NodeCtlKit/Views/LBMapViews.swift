import AgentAPI

/// `nodectl map get na_lb_services` and `na_lb_backends`: the socket load balancer's maps as `cilium-dbg bpf lb
/// list` shows them, from the decoded entries of `GET /v1/map/{name}`.
public enum LBMapViews {
    /// One block per frontend: slot 0 first ("0.0.0.0:0" as Cilium prints the service's own slot, with the
    /// service's counts), then its backend slots in order; a backend repeated for its weight has several slots.
    /// The revnat id is the service id.
    public static func services(_ response: JSON) -> String {
        let entries = response["entries"]?.arrayValue ?? []
        guard !entries.isEmpty else { return "No entries in \(Cells.text(response["name"]))\n" }
        var heads: [String: JSON] = [:]
        var slots: [String: [JSON]] = [:]
        for entry in entries {
            let frontend = Cells.text(entry["key"]?["frontend"])
            if entry["key"]?["slot"]?.intValue == 0 {
                heads[frontend] = entry["value"]
            } else {
                slots[frontend, default: []].append(entry)
            }
        }
        var table = Table(columns: ["Service address", "Backend address (revnat_id) (slot)"])
        for frontend in Set(heads.keys).union(slots.keys).sorted() {
            let head = heads[frontend]
            let revnat = head.map { Cells.text($0["service-id"]) } ?? Cells.none
            var lines: [String] = []
            if let head {
                let any = frontend.hasPrefix("[") ? "[::]:0" : "0.0.0.0:0"
                var notes = ["slots \(Cells.text(head["count"]))", "inactive \(Cells.text(head["inactive"]))"]
                notes.append("bank \(Cells.text(head["bank"]))")
                if let timeout = head["affinity-timeout"]?.intValue, timeout > 0 {
                    notes.append("affinity \(timeout)s")
                }
                lines.append("\(any) (\(revnat)) (0) [\(notes.joined(separator: ", "))]")
            }
            let count = head?["count"]?.intValue ?? 0
            let bank = head?["bank"]?.intValue
            let ordered = (slots[frontend] ?? []).sorted { slotOrder($0, bank) < slotOrder($1, bank) }
            for entry in ordered {
                let slot = entry["key"]?["slot"]?.intValue ?? 0
                let backend =
                    entry["value"]?["backend"]?.stringValue ?? "id \(Cells.text(entry["value"]?["backend-id"]))"
                var line = "\(backend) (\(revnat)) (\(slot))"
                if entry["key"]?["bank"]?.intValue != bank {
                    line += " [unused bank]"
                } else if slot > count {
                    line += " [inactive]"
                }
                lines.append(line)
            }
            for (index, line) in lines.enumerated() {
                table.append([index == 0 ? frontend : "", line])
            }
        }
        return table.render()
    }

    /// One row per backend id: address, protocol, state and weight.
    public static func backends(_ response: JSON) -> String {
        let entries = response["entries"]?.arrayValue ?? []
        guard !entries.isEmpty else { return "No entries in \(Cells.text(response["name"]))\n" }
        var table = Table(columns: ["Backend ID", "Address", "Protocol", "State", "Weight"])
        let sorted = entries.sorted {
            ($0["key"]?["backend-id"]?.intValue ?? 0) < ($1["key"]?["backend-id"]?.intValue ?? 0)
        }
        for entry in sorted {
            let value = entry["value"]
            table.append([
                Cells.text(entry["key"]?["backend-id"]), Cells.text(value?["address"]), Cells.text(value?["protocol"]),
                Cells.text(value?["state"]), Cells.text(value?["weight"]),
            ])
        }
        return table.render()
    }

    /// The bank in use first, then by slot.
    private static func slotOrder(_ entry: JSON, _ bank: Int64?) -> (Int, Int64) {
        (entry["key"]?["bank"]?.intValue == bank ? 0 : 1, entry["key"]?["slot"]?.intValue ?? 0)
    }
}
