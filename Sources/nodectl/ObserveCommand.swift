import AgentAPI
import ArgumentParser
import NodeCtlKit

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

struct ObserveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "observe",
        abstract: "Show the datapath's recent verdicts (flows), or follow new ones with -f.",
        discussion: """
            Prints one line per flow: TIMESTAMP  SOURCE -> DESTINATION  VERDICT  REASON. Pods show as \
            namespace/name:port, other peers as ip:port with their identity's name, e.g. (world). The agent \
            reports every drop and new allowed connections. Filters combine: a flow must match all of them.

            -o json prints each flow as one JSON object per line (also while following), for jq and scripts; \
            -o yaml prints one document per flow.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "FORWARDED or DROPPED (ALLOWED means FORWARDED).")
    var verdict: String?

    @Option(name: .customLong("from-pod"), help: ArgumentHelp("Source pod.", valueName: "namespace/name"))
    var fromPod: String?

    @Option(name: .customLong("to-pod"), help: ArgumentHelp("Destination pod.", valueName: "namespace/name"))
    var toPod: String?

    @Option(help: ArgumentHelp("Pod on either side.", valueName: "namespace/name"))
    var pod: String?

    @Option(name: .customLong("from-endpoint"), help: "Source endpoint id.")
    var fromEndpoint: Int?

    @Option(name: .customLong("to-endpoint"), help: "Destination endpoint id.")
    var toEndpoint: Int?

    @Option(
        help: ArgumentHelp("A label one side carries, e.g. k8s:app=frontend (repeat for several).", valueName: "label"))
    var label: [String] = []

    @Option(help: "IP address on either side.")
    var ip: String?

    @Option(name: .customLong("from-ip"), help: "Source IP address.")
    var fromIP: String?

    @Option(name: .customLong("to-ip"), help: "Destination IP address.")
    var toIP: String?

    @Option(help: "Port on either side.")
    var port: Int?

    @Option(name: .customLong("protocol"), help: "TCP, UDP, ICMP, ICMPv6, SCTP or a number.")
    var transport: String?

    @Option(help: ArgumentHelp("Drop reason name (\"policy denied\") or code (133).", valueName: "reason"))
    var reason: String?

    @Option(help: ArgumentHelp("Only flows since this time (RFC 3339 or unix seconds).", valueName: "time"))
    var since: String?

    @Option(help: "l7 (HTTP request decisions) or l3-l4 (connection verdicts).")
    var type: String?

    @Option(name: .customLong("http-method"), help: "HTTP requests with this method (GET, POST, ...).")
    var httpMethod: String?

    @Option(
        name: .customLong("http-path"),
        help: ArgumentHelp("HTTP requests whose path (with query) this regex matches whole.", valueName: "regex"))
    var httpPath: String?

    @Option(help: "Show the last N matching flows (default 100; with -f, none unless given).")
    var last: Int?

    @Flag(name: [.short, .long], help: "Keep printing new flows until interrupted (Ctrl-C).")
    var follow = false

    func validate() throws {
        if let verdict, !["FORWARDED", "DROPPED", "ALLOWED"].contains(verdict.uppercased()) {
            throw ValidationError("--verdict must be FORWARDED, DROPPED or ALLOWED, got \(verdict)")
        }
        for (name, value) in [("--from-pod", fromPod), ("--to-pod", toPod), ("--pod", pod)] {
            guard let value else { continue }
            let parts = value.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("\(name) must be namespace/name, got \(value)")
            }
        }
        if let port, !(0...65535).contains(port) { throw ValidationError("--port must be 0-65535, got \(port)") }
        if let last, last <= 0 { throw ValidationError("--last must be a positive number, got \(last)") }
    }

    var selection: FlowSelection {
        var selection = FlowSelection()
        selection.verdict = verdict?.uppercased()
        selection.fromPod = fromPod
        selection.toPod = toPod
        selection.pod = pod
        selection.fromEndpoint = fromEndpoint
        selection.toEndpoint = toEndpoint
        selection.labels = label
        selection.ip = ip
        selection.fromIP = fromIP
        selection.toIP = toIP
        selection.port = port
        selection.transport = transport
        selection.reason = reason
        selection.since = since
        selection.last = last
        selection.type = type
        selection.httpMethod = httpMethod
        selection.httpPath = httpPath
        return selection
    }

    func run() throws {
        let client = global.client
        guard follow else {
            let answer = try client.flows(selection)
            for flow in answer["flows"]?.arrayValue ?? [] { try emit(flow) }
            if global.output == .table, answer["flows"]?.arrayValue?.isEmpty ?? true { printNote("No flows match") }
            return
        }
        var failure: Error?
        try client.followFlows(selection) { item in
            guard let item else { return .continue }
            do {
                try emit(item)
                return .continue
            } catch {
                failure = error
                return .stop
            }
        }
        if let failure { throw failure }
    }

    /// Prints one flow (or a lost-flows notice) right away: output is written unbuffered so a pipe sees each
    /// flow as it comes. Fails when standard output is gone (the reader of a pipe quit).
    private func emit(_ item: JSON) throws {
        if let lost = item["lost-flows"]?.intValue {
            if global.output == .table {
                printNote("(\(lost) flows lost: this follower fell behind)")
                return
            }
        }
        let text: String
        switch global.output {
        case .table: text = FlowViews.line(item) + "\n"
        case .json: text = item.serialized() + "\n"
        case .yaml: text = "---\n" + global.output.render(item, table: { _ in "" })
        }
        try writeOut(text)
    }

    private func writeOut(_ text: String) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ExitCode(1) }
            offset += n
        }
    }
}

struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Print the agent's metrics in the Prometheus text format (GET /v1/metrics).")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        print(try global.client.metricsText(), terminator: "")
    }
}
