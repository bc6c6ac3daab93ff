import AgentAPI

/// HTTP rules as the endpoint policy and the trace show them.
enum HTTPViews {
    /// One row per rule: index, method, path, host, headers, the policy rule it came from.
    static func rules(_ rules: [JSON]) -> String {
        var table = Table(columns: ["#", "Method", "Path", "Host", "Headers", "Rule"])
        for rule in rules {
            let headers = (rule["headers"]?.arrayValue ?? []).map { Cells.text($0) }
            table.append([
                Cells.text(rule["index"]), field(rule["method"]), field(rule["path"]), field(rule["host"]),
                headers.isEmpty ? Cells.none : headers.joined(separator: ", "),
                rule["rule"].map { Cells.text($0) } ?? Cells.text(rule["rule-id"]),
            ])
        }
        return table.render()
    }

    /// `GET /v1/endpoint/{id}/policy`'s `http`: per port, its rules and which peers they apply to.
    static func ports(_ ports: [JSON]) -> String {
        var out = ""
        for port in ports {
            out += "\nHTTP rules on TCP/\(Cells.text(port["port"])):\n" + rules(port["rules"]?.arrayValue ?? [])
            var peers = Table(columns: ["Identity", "Requests"])
            for peer in port["peers"]?.arrayValue ?? [] {
                let identity = peer["identity"]?.intValue == 0 ? "any" : Cells.text(peer["identity"])
                let access =
                    peer["access"]?.stringValue == "unrestricted"
                    ? "all (unrestricted)"
                    : "rules " + (peer["rules"]?.arrayValue ?? []).map { Cells.text($0) }.joined(separator: ",")
                peers.append([identity, access])
            }
            out += "\n" + peers.render()
        }
        return out
    }

    /// An unconstrained field shows as "*".
    private static func field(_ value: JSON?) -> String { value.map { Cells.text($0) } ?? "*" }
}
