import AgentAPI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// `nodectl observe`: one line per flow, as `hubble observe` prints them:
/// `Nov 28 08:01:02.123  web-tier/frontend:41234 -> api-tier/backend-api:9090  DROPPED  policy denied (egress)`.
public enum FlowViews {
    public static let header = "TIMESTAMP  SOURCE -> DESTINATION  VERDICT  REASON"

    /// All flows of a `GET /v1/flows` answer, one line each, or a note when there are none.
    public static func list(_ response: JSON) -> String {
        let flows = response["flows"]?.arrayValue ?? []
        guard !flows.isEmpty else { return "No flows match\n" }
        return flows.map { line($0) + "\n" }.joined()
    }

    /// One flow. Pods show as `namespace/name:port`; other peers as `ip:port`, followed by the reserved identity's
    /// name (`(world)`) when there is one; ICMP without ports. The reason is the drop reason, or for forwarded
    /// flows "allowed" (or "not enforced" when no policy applied), then the direction, the protocol unless TCP,
    /// and the deciding rule when one is known.
    public static func line(_ flow: JSON) -> String {
        let icmp = ["ICMP", "ICMPv6"].contains(flow["protocol"]?.stringValue ?? "")
        let source = peer(flow["source"], icmp: icmp)
        let destination = peer(flow["destination"], icmp: icmp)
        let verdict = flow["verdict"]?.stringValue ?? "?"
        var reason: String
        if verdict == "FORWARDED" {
            reason = flow["rule"]?.stringValue == nil ? "not enforced" : "allowed"
        } else {
            reason = flow["reason"]?.stringValue ?? "reason \(flow["reason-code"]?.intValue ?? 0)"
        }
        var qualifiers = [flow["direction"]?.stringValue ?? "?"]
        if let proto = flow["protocol"]?.stringValue, proto != "TCP" { qualifiers.append(proto) }
        reason += " (\(qualifiers.joined(separator: ", ")))"
        if let rule = flow["rule"]?.stringValue { reason += " by \(rule)" }
        return "\(timestamp(flow["time"]?.stringValue))  \(source) -> \(destination)  \(verdict)  \(reason)"
    }

    static func peer(_ peer: JSON?, icmp: Bool) -> String {
        guard let peer else { return "?" }
        let ip = peer["ip"]?.stringValue ?? "?"
        let port = icmp ? nil : peer["port"]?.intValue
        if let pod = peer["pod"]?.stringValue {
            return port.map { "\(pod):\($0)" } ?? pod
        }
        var text = ip.contains(":") && port != nil ? "[\(ip)]" : ip
        if let port { text += ":\(port)" }
        if let name = peer["name"]?.stringValue, name != ip { text += " (\(name))" }
        return text
    }

    /// `Nov 28 08:01:02.123` in local time, as `hubble observe` prints times; the raw text when it does not parse.
    static func timestamp(_ text: String?) -> String {
        guard let text, let nanos = RFC3339.parse(text) else { return text ?? "?" }
        var seconds = time_t(nanos / 1_000_000_000)
        let millis = Int((nanos % 1_000_000_000 + 1_000_000_000) % 1_000_000_000 / 1_000_000)
        if nanos < 0 && nanos % 1_000_000_000 != 0 { seconds -= 1 }
        var parts = tm()
        guard localtime_r(&seconds, &parts) != nil else { return text }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let month = months[Int(parts.tm_mon) % 12]
        let day = parts.tm_mday < 10 ? " \(parts.tm_mday)" : "\(parts.tm_mday)"
        return "\(month) \(day) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))."
            + millis.zeroPadded(to: 3)
    }

    private static func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
}
