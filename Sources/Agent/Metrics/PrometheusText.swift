import DatapathCore

/// Renders samples in the Prometheus text exposition format (version 0.0.4).
///
/// Samples are grouped into families: all samples of one metric name (for histograms and summaries, the base name
/// of their `_bucket`, `_sum` and `_count` series) come together under one `# HELP` and one `# TYPE` line, in the
/// order families first appear. Names and label names that Prometheus would reject are sanitized (invalid
/// characters become `_`); label values and help texts are escaped; a series repeated with the same labels is
/// written once (the first wins), since a scrape with duplicates is rejected as a whole.
public enum PrometheusText {
    /// The Content-Type of the format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static let types: Set<String> = ["counter", "gauge", "histogram", "summary", "untyped"]

    public static func render(_ samples: [MetricSample]) -> String {
        var order: [String] = []
        var families: [String: (help: String, type: String, samples: [MetricSample])] = [:]
        for sample in samples {
            let type = types.contains(sample.type) ? sample.type : "untyped"
            let name = metricName(sample.name)
            let family = familyName(name, type: type)
            if families[family] == nil {
                order.append(family)
                families[family] = (sample.help, type, [])
            } else if families[family]!.help.isEmpty {
                families[family]!.help = sample.help
            }
            var cleaned = sample
            cleaned.name = name
            families[family]!.samples.append(cleaned)
        }
        var out = ""
        for family in order {
            let (help, type, members) = families[family]!
            if !help.isEmpty { out += "# HELP \(family) \(escapeHelp(help))\n" }
            out += "# TYPE \(family) \(type)\n"
            var seen = Set<String>()
            for sample in members {
                let series = sample.name + labelText(sample.labels)
                guard seen.insert(series).inserted else { continue }
                out += "\(series) \(value(sample.value))\n"
            }
        }
        return out
    }

    /// The family a series belongs to: histograms' and summaries' suffixed series belong to their base name.
    static func familyName(_ name: String, type: String) -> String {
        let suffixes: [String] =
            switch type {
            case "histogram": ["_bucket", "_sum", "_count"]
            case "summary": ["_sum", "_count"]
            default: []
            }
        for suffix in suffixes where name.hasSuffix(suffix) && name.count > suffix.count {
            return String(name.dropLast(suffix.count))
        }
        return name
    }

    /// `{a="x",b="y"}` with names sorted (`le` and `quantile` last, as people read them), or "" without labels.
    static func labelText(_ labels: [String: String]) -> String {
        guard !labels.isEmpty else { return "" }
        let trailing: Set<String> = ["le", "quantile"]
        let names = labels.keys.map { (clean: labelName($0), original: $0) }.sorted { a, b in
            trailing.contains(a.clean) == trailing.contains(b.clean)
                ? (a.clean, a.original) < (b.clean, b.original) : trailing.contains(b.clean)
        }
        var seen = Set<String>()
        var parts: [String] = []
        for (clean, original) in names {
            guard seen.insert(clean).inserted else { continue }
            parts.append("\(clean)=\"\(escapeLabelValue(labels[original]!))\"")
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// A valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    public static func metricName(_ name: String) -> String {
        sanitize(name, allowColon: true)
    }

    /// A valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with the reserved `__`.
    public static func labelName(_ name: String) -> String {
        var clean = sanitize(name, allowColon: false)
        while clean.hasPrefix("__") { clean.removeFirst() }
        return clean
    }

    private static func sanitize(_ name: String, allowColon: Bool) -> String {
        var out = ""
        for scalar in name.unicodeScalars {
            let ok =
                ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                || scalar == "_" || (allowColon && scalar == ":")
            out.unicodeScalars.append(ok ? scalar : "_")
        }
        if out.isEmpty || ("0"..."9").contains(out.unicodeScalars.first!) { out = "_" + out }
        return out
    }

    /// Label values escape backslash, double quote and line feed.
    public static func escapeLabelValue(_ value: String) -> String { escape(value, quote: true) }

    /// HELP texts escape backslash and line feed (a double quote is literal there).
    public static func escapeHelp(_ text: String) -> String { escape(text, quote: false) }

    private static func escape(_ text: String, quote: Bool) -> String {
        var out = ""
        for c in text.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"" where quote: out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Integers without a fraction (counters read naturally), `NaN`, `+Inf`, `-Inf`, else Swift's shortest
    /// round-tripping form, which Prometheus parses (`0.25`, `1e-05`).
    public static func value(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 9_007_199_254_740_992 { return String(Int64(v)) }
        return "\(v)"
    }
}
