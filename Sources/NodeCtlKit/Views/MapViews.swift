import AgentAPI

/// `nodectl map list` and `nodectl map get`.
public enum MapViews {
    /// The maps the agent manages, from `GET /v1/map`.
    public static func list(_ response: JSON) -> String {
        var table = Table(columns: ["Name", "Owner", "Type", "Key", "Value", "Max", "Entries"])
        for map in response["maps"]?.arrayValue ?? [] {
            table.append([
                Cells.text(map["name"]), Cells.text(map["owner"]), Cells.text(map["type"]),
                Cells.text(map["key-size"]), Cells.text(map["value-size"]), Cells.text(map["max-entries"]),
                Cells.text(map["entries"]),
            ])
        }
        return table.render()
    }

    /// A map's entries: one column per decoded key field, then one per value field. A field name present in both
    /// key and value is shown as "KEY.NAME" and "VALUE.NAME". Entries the agent could not decode show their
    /// `key-hex`/`value-hex`. The load balancer's services and backends read as `cilium-dbg bpf lb list` shows them.
    public static func entries(_ response: JSON) -> String {
        let entries = response["entries"]?.arrayValue ?? []
        guard !entries.isEmpty else { return "No entries in \(Cells.text(response["name"]))\n" }
        if entries.allSatisfy({ $0["key"] != nil }) {
            switch response["name"]?.stringValue {
            case "na_lb_services": return LBMapViews.services(response)
            case "na_lb_backends": return LBMapViews.backends(response)
            default: break
            }
        }

        let keyFields = fieldNames(entries.compactMap { $0["key"] })
        let valueFields = fieldNames(entries.compactMap { $0["value"] })
        let shared = Set(keyFields).intersection(valueFields)
        let otherFields = fieldNames(
            entries.map { entry in
                JSON.object((entry.objectValue ?? [:]).filter { $0.key != "key" && $0.key != "value" })
            })

        var columns: [(title: String, cell: (JSON) -> String)] = []
        for name in keyFields {
            let title = shared.contains(name) ? "key.\(name)" : name
            columns.append((title, { field($0["key"], name) }))
        }
        for name in valueFields {
            let title = shared.contains(name) ? "value.\(name)" : name
            columns.append((title, { field($0["value"], name) }))
        }
        for name in otherFields {
            columns.append((name, { Cells.text($0[name]) }))
        }

        var table = Table(columns: columns.map(\.title))
        for entry in entries {
            table.append(columns.map { $0.cell(entry) })
        }
        return table.render()
    }

    /// Field names across objects in first-seen order, each object's names sorted; a non-object value
    /// contributes the pseudo-field "" (shown as the whole value).
    private static func fieldNames(_ values: [JSON]) -> [String] {
        var names: [String] = []
        var seen: Set<String> = []
        for value in values {
            let keys = value.objectValue.map { $0.keys.sorted() } ?? [""]
            for key in keys where seen.insert(key).inserted {
                names.append(key)
            }
        }
        return names
    }

    private static func field(_ value: JSON?, _ name: String) -> String {
        if name.isEmpty { return value?.objectValue == nil ? Cells.text(value) : Cells.none }
        return Cells.text(value?[name])
    }
}
