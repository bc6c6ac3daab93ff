import AgentAPI

/// `nodectl ct list`: one row per conntrack entry, like `cilium-dbg bpf ct list global`.
public enum ConntrackViews {
    public static func list(_ response: JSON) -> String {
        let entries = response["entries"]?.arrayValue ?? []
        guard !entries.isEmpty else { return "No conntrack entries\n" }
        var table = Table(columns: [
            "Endpoint", "Dir", "Proto", "Source", "Destination", "Flags", "Expires", "Packets",
            "Bytes",
        ])
        for entry in entries {
            let source = "\(Cells.text(entry["source"])):\(Cells.text(entry["source-port"]))"
            let destination = "\(Cells.text(entry["destination"])):\(Cells.text(entry["destination-port"]))"
            let flags = (entry["flags"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ",")
            table.append([
                Cells.text(entry["endpoint"]), Cells.text(entry["direction"]), Cells.text(entry["protocol"]), source,
                destination, flags.isEmpty ? "-" : flags, "\(Cells.text(entry["expires-in"]))s",
                Cells.text(entry["packets"]), Cells.text(entry["bytes"]),
            ])
        }
        return table.render()
    }
}
