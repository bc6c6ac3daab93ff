import AgentAPI

/// `nodectl nat list` and `nodectl nat flush`.
public enum NATViews {
    /// One row per mapping: who (original), as whom (translated), to where, and how long it has left.
    public static func list(_ response: JSON) -> String {
        let mappings = response["mappings"]?.arrayValue ?? []
        guard !mappings.isEmpty else { return "No NAT mappings\n" }
        var table = Table(columns: ["Protocol", "Original", "Translated", "Destination", "State", "Age", "Expires"])
        for mapping in mappings {
            table.append([
                Cells.text(mapping["protocol"]), endpoint(mapping["original"]), endpoint(mapping["translated"]),
                endpoint(mapping["destination"]), Cells.text(mapping["state"]),
                duration(mapping["age-seconds"]), duration(mapping["expires-in-seconds"]),
            ])
        }
        return table.render()
    }

    public static func flush(_ response: JSON) -> String {
        let entries = response["deleted-entries"]?.intValue ?? 0
        return "Deleted \(entries) NAT entries (\(entries / 2) mappings, two entries each)\n"
    }

    /// "10.244.1.5:41000", "[fd00::5]:41000".
    static func endpoint(_ value: JSON?) -> String {
        guard let address = value?["address"]?.stringValue else { return Cells.none }
        let port = Cells.text(value?["port"])
        return address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    static func duration(_ value: JSON?) -> String {
        value?.intValue.map { StatusView.formatDuration(seconds: $0) } ?? Cells.none
    }
}
