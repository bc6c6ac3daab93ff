import AgentAPI

/// `nodectl node list` and the cluster part of `nodectl status`.
public enum ClusterViews {
    /// `GET /v1/cluster/nodes`: one row per node, this one first and marked "(local)"; a standalone agent says so
    /// under its single row.
    public static func nodes(_ answer: JSON) -> String {
        var table = Table(columns: ["Name", "Address", "Pod CIDRs", "Last seen"])
        for node in answer["nodes"]?.arrayValue ?? [] {
            let local = node["local"]?.boolValue == true
            table.append([
                Cells.text(node["name"]) + (local ? " (local)" : ""), Cells.text(node["address"]),
                Cells.text(node["pod-cidrs"]), Cells.text(node["last-seen"]),
            ])
        }
        var out = table.render()
        if answer["cluster"]?.boolValue == false { out += "Standalone: not part of a cluster\n" }
        return out
    }

    /// The `cluster` part of `/v1/healthz` as fields of the status list.
    static func healthFields(_ cluster: JSON) -> [(name: String, value: String)] {
        let etcd = cluster["etcd"]
        var fields: [(name: String, value: String)] = [
            (
                "Cluster",
                "\(Cells.text(cluster["name"])) (node \(Cells.text(cluster["node"])), "
                    + "address \(Cells.text(cluster["node-address"])))"
            ),
            ("etcd", Cells.text(etcd?["state"])),
        ]
        if let error = etcd?["last-error"] { fields.append(("etcd last error", Cells.text(error))) }
        fields += [
            ("Nodes known", Cells.text(cluster["nodes"])),
            ("Remote pods", Cells.text(cluster["remote-endpoints"])),
            ("Cluster synced", Cells.text(cluster["synced"])),
            ("Last sync", Cells.text(cluster["last-sync"])),
            ("etcd writes", "\(Cells.text(cluster["writes"])) (\(Cells.text(cluster["errors"])) errors)"),
        ]
        return fields
    }

    /// One row per etcd member as the agent reached it, indented under the status list.
    static func members(_ cluster: JSON) -> String {
        var table = Table(columns: ["Member", "Healthy", "Version", "Detail"])
        for member in cluster["etcd"]?["members"]?.arrayValue ?? [] {
            table.append([
                Cells.text(member["endpoint"]), Cells.text(member["healthy"]), Cells.text(member["version"]),
                Cells.text(member["error"]),
            ])
        }
        return "etcd members:\n" + table.render().split(separator: "\n").map { "  \($0)\n" }.joined()
    }
}
