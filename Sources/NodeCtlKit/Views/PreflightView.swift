import AgentAPI

/// `nodectl preflight`: the kernel preflight report (the `kernel` object of `/v1/healthz`).
public enum PreflightView {
    public static func render(_ kernel: JSON) -> String {
        var out = Cells.fieldList([
            ("Kernel", Cells.text(kernel["version"])),
            ("Features", Cells.text(kernel["features"])),
            ("Status", Cells.text(kernel["status"])),
        ])
        var table = Table(columns: ["Check", "Status", "Needed by", "Detail"])
        for check in kernel["checks"]?.arrayValue ?? [] {
            table.append([
                Cells.text(check["name"]), Cells.text(check["status"]), Cells.text(check["needed-by"]),
                Cells.text(check["detail"]),
            ])
        }
        return out + table.render()
    }

    /// The kernel line of `nodectl status` from healthz's `kernel`: the release and the preflight's verdict,
    /// naming what is missing. An agent from before the preflight answers the release alone.
    static func summary(_ kernel: JSON?) -> String {
        guard let kernel, kernel.objectValue != nil else { return Cells.text(kernel) }
        let missing = (kernel["problems"]?.arrayValue ?? []).filter {
            $0["required"] == true && $0["status"] == "missing"
        }.compactMap { $0["name"]?.stringValue }
        let verdict = missing.isEmpty ? "preflight ok" : "preflight: missing \(missing.joined(separator: ", "))"
        return "\(Cells.text(kernel["version"])) (\(verdict))"
    }
}
