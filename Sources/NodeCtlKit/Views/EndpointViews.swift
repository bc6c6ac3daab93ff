import AgentAPI

/// `nodectl endpoint ...`.
public enum EndpointViews {
    /// `GET /v1/endpoint`: one row per endpoint, by id.
    public static func list(_ endpoints: JSON) -> String {
        var table = Table(columns: [
            "ID", "Namespace", "Pod", "Interface", "IPv4", "IPv6", "Identity", "State", "Revision", "Labels",
        ])
        let sorted = (endpoints.arrayValue ?? []).sorted { ($0["id"]?.intValue ?? 0) < ($1["id"]?.intValue ?? 0) }
        for endpoint in sorted {
            table.append([
                Cells.text(endpoint["id"]), Cells.text(endpoint["k8s-namespace"]), Cells.text(endpoint["k8s-pod-name"]),
                Cells.text(endpoint["interface-name"]), Cells.text(endpoint["addressing"]?["ipv4"]),
                Cells.text(endpoint["addressing"]?["ipv6"]), Cells.text(endpoint["identity"]?["id"]),
                Cells.text(endpoint["state"]), Cells.text(endpoint["policy-revision"]),
                Cells.text(endpoint["labels"]),
            ])
        }
        return table.render()
    }

    /// One endpoint as an aligned field list.
    public static func detail(_ endpoint: JSON) -> String {
        Cells.fieldList(Cells.flatten(endpoint))
    }

    /// `GET /v1/endpoint/{id}/policy`: what the datapath enforces for the endpoint.
    public static func policy(_ realized: JSON) -> String {
        var out = "Endpoint \(Cells.text(realized["endpoint"])), policy revision \(Cells.text(realized["revision"]))\n"
        out += "Ingress enforced: \(Cells.text(realized["ingress-enforced"]))\n"
        out += "Egress enforced:  \(Cells.text(realized["egress-enforced"]))\n"
        let entries = realized["entries"]?.arrayValue ?? []
        let http = HTTPViews.ports(realized["http"]?.arrayValue ?? [])
        guard !entries.isEmpty else { return out + "No policy entries\n" + http }
        var table = Table(columns: ["Direction", "Identity", "Protocol", "Port", "Verdict", "Rules"])
        for entry in entries {
            let identity = entry["identity"]?.intValue
            table.append([
                Cells.text(entry["direction"]),
                identity == 0 ? "any" : Cells.text(entry["identity"]),
                Cells.text(entry["protocol"]),
                portRange(entry["port"]?.intValue, entry["end-port"]?.intValue),
                entry["deny"]?.boolValue == true ? "deny" : "allow",
                (entry["rules"]?.arrayValue ?? []).map { Cells.text($0) }.joined(separator: ", "),
            ])
        }
        return out + "\n" + table.render() + http
    }

    /// "any" for port 0 or none, "8080" for a single port, "8000-8080" for a range.
    static func portRange(_ port: Int64?, _ endPort: Int64?) -> String {
        guard let port, port != 0 else { return "any" }
        guard let endPort, endPort > port else { return String(port) }
        return "\(port)-\(endPort)"
    }
}

/// `nodectl identity ...`.
public enum IdentityViews {
    /// `GET /v1/identity`: one row per identity, by id.
    public static func list(_ identities: JSON) -> String {
        var table = Table(columns: ["ID", "Labels", "References"])
        let sorted = (identities.arrayValue ?? []).sorted { ($0["id"]?.intValue ?? 0) < ($1["id"]?.intValue ?? 0) }
        for identity in sorted {
            table.append([
                Cells.text(identity["id"]), Cells.text(identity["labels"]), Cells.text(identity["references"]),
            ])
        }
        return table.render()
    }

    public static func detail(_ identity: JSON) -> String {
        Cells.fieldList(Cells.flatten(identity))
    }
}
