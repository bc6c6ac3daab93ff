import AgentAPI
import Foundation
import Glibc
import XCTest

/// Helpers for the observability suites: sending datagrams, reading flows and Prometheus metrics from the agent.

/// Sends `count` datagrams of `size` bytes from `pod` to `ip`:`port` without waiting for answers (a dropped
/// datagram gets none), on one connected socket.
func sendDatagrams(from pod: Pod, to ip: String, port: UInt16, count: Int, size: Int = 100) throws {
    let address = try SocketAddress(ip: ip, port: port)
    let fd = try Sockets.make(in: pod.netns, family: address.family, type: SOCK_DGRAM)
    defer { close(fd) }
    guard address.withSockaddr({ connect(fd, $0, $1) }) == 0 else { throw NetnsError("connect UDP to \(ip):\(port)") }
    let payload = [UInt8](repeating: 0x61, count: size)
    var sent = 0
    while sent < count {
        let n = payload.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n == size {
            sent += 1
        } else if n < 0 && errno == EAGAIN {
            _ = Sockets.wait(fd, for: Int16(POLLOUT), until: Date() + 1)
        } else {
            throw NetnsError("send datagram \(sent + 1) of \(count) to \(ip):\(port)")
        }
    }
}

/// Prometheus text parsed into series: `name{a="x",b="y"}` (labels sorted) → value. Throws with the line when
/// the text is not valid exposition format: every sample's family must have a `# TYPE` line before it, a family's
/// samples must be contiguous, names and label names must be valid, values must parse.
struct PrometheusScrape {
    var series: [String: Double] = [:]
    var types: [String: String] = [:]

    init(_ text: String) throws {
        var finished = Set<String>()
        var current: String?
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let where_ = "line \(number + 1): \(line)"
            if line.isEmpty { continue }
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3])
                else { throw AgentHarnessError("bad TYPE at \(where_)") }
                let family = String(parts[2])
                guard types[family] == nil else { throw AgentHarnessError("second TYPE for \(family) at \(where_)") }
                types[family] = String(parts[3])
                if let current { finished.insert(current) }
                current = family
                continue
            }
            if line.hasPrefix("#") { continue }
            let (name, labels, value) = try Self.sample(String(line), where_)
            guard Self.validName(name, colon: true) else { throw AgentHarnessError("bad metric name at \(where_)") }
            for label in labels.keys where !Self.validName(label, colon: false) {
                throw AgentHarnessError("bad label name at \(where_)")
            }
            let family = Self.family(of: name, types: types)
            guard family == current, !finished.contains(family) else {
                throw AgentHarnessError("sample outside its family's block (or without TYPE) at \(where_)")
            }
            let key = Self.key(name, labels)
            guard series[key] == nil else { throw AgentHarnessError("duplicate series at \(where_)") }
            series[key] = value
        }
    }

    /// The value of `name` with exactly `labels`; nil when absent.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? { series[Self.key(name, labels)] }

    /// All series of metric `name`, by their labels.
    func all(_ name: String) -> [[String: String]: Double] {
        var result: [[String: String]: Double] = [:]
        for (key, value) in series where key == name || key.hasPrefix(name + "{") {
            result[(try? Self.sample("\(key) 0", key).1) ?? [:]] = value
        }
        return result
    }

    static func key(_ name: String, _ labels: [String: String]) -> String {
        guard !labels.isEmpty else { return name }
        return name + "{" + labels.keys.sorted().map { "\($0)=\"\(escape(labels[$0]!))\"" }.joined(separator: ",") + "}"
    }

    private static func escape(_ v: String) -> String {
        v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    private static func family(of name: String, types: [String: String]) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if let type = types[base], type == "histogram" || (type == "summary" && suffix != "_bucket") { return base }
        }
        return name
    }

    private static func validName(_ name: String, colon: Bool) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_"
                || (colon && $0 == ":")
        }
    }

    /// Splits `name{a="x"} value`, unescaping label values.
    private static func sample(_ line: String, _ where_: String) throws -> (String, [String: String], Double) {
        var chars = Array(line.unicodeScalars)[...]
        var name = ""
        while let c = chars.first, c != "{", c != " " {
            name.unicodeScalars.append(c)
            chars = chars.dropFirst()
        }
        var labels: [String: String] = [:]
        if chars.first == "{" {
            chars = chars.dropFirst()
            while chars.first != "}" {
                var label = ""
                while let c = chars.first, c != "=" {
                    label.unicodeScalars.append(c)
                    chars = chars.dropFirst()
                }
                guard chars.count >= 2, chars.dropFirst().first == "\"" else {
                    throw AgentHarnessError("bad labels at \(where_)")
                }
                chars = chars.dropFirst(2)
                var value = ""
                while let c = chars.first, c != "\"" {
                    chars = chars.dropFirst()
                    if c == "\\" {
                        guard let next = chars.first else { throw AgentHarnessError("bad escape at \(where_)") }
                        chars = chars.dropFirst()
                        switch next {
                        case "n": value += "\n"
                        case "\\", "\"": value.unicodeScalars.append(next)
                        default: throw AgentHarnessError("bad escape at \(where_)")
                        }
                    } else {
                        value.unicodeScalars.append(c)
                    }
                }
                guard chars.first == "\"" else { throw AgentHarnessError("unterminated label value at \(where_)") }
                chars = chars.dropFirst()
                labels[label] = value
                if chars.first == "," { chars = chars.dropFirst() }
                guard !chars.isEmpty else { throw AgentHarnessError("unterminated labels at \(where_)") }
            }
            chars = chars.dropFirst()
        }
        guard chars.first == " " else { throw AgentHarnessError("no value at \(where_)") }
        let text = String(String.UnicodeScalarView(chars.dropFirst()))
        let value: Double? =
            switch text {
            case "+Inf": .infinity
            case "-Inf": -.infinity
            case "NaN": .nan
            default: Double(text)
            }
        guard let value else { throw AgentHarnessError("bad value at \(where_)") }
        return (name, labels, value)
    }
}

extension AgentProcess {
    /// `GET /v1/metrics`, parsed and validated.
    func scrape(file: StaticString = #filePath, line: UInt = #line) throws -> PrometheusScrape {
        let answer = try api(.GET, "/v1/metrics")
        guard answer.status == 200 else { throw AgentHarnessError("GET /v1/metrics: \(answer)") }
        return try PrometheusScrape(answer.body)
    }

    /// Packets dropped for `reason` in `direction` ("egress", "ingress"), summed over CPUs, from the metrics map.
    func droppedPackets(reason: Int, direction: String = "egress") throws -> Int64 {
        let dump = try api(.GET, "/v1/map/na_metrics?limit=10000")
        var total: Int64 = 0
        for entry in dump.json?["entries"]?.arrayValue ?? [] {
            guard entry["key"]?["reason-code"]?.intValue == Int64(reason),
                entry["key"]?["direction"]?.stringValue == direction
            else { continue }
            total += entry["value"]?["packets"]?.intValue ?? 0
        }
        return total
    }

    /// `GET /v1/flows` with `query` (already encoded); throws unless 200.
    func flows(_ query: String = "last=10000") throws -> [JSON] {
        let answer = try api(.GET, "/v1/flows?\(query)")
        guard answer.status == 200, let flows = answer.json?["flows"]?.arrayValue else {
            throw AgentHarnessError("GET /v1/flows?\(query): \(answer)")
        }
        return flows
    }

    /// Polls `GET /v1/flows?<query>` until `done` holds for the flows or `timeout` passes; returns the last answer.
    func waitForFlows(
        _ query: String = "last=10000", timeout: TimeInterval = 3, until done: ([JSON]) -> Bool
    ) throws -> [JSON] {
        let deadline = Date() + timeout
        var flows = try self.flows(query)
        while !done(flows) && Date() < deadline {
            usleep(50_000)
            flows = try self.flows(query)
        }
        return flows
    }

    /// Polls the metrics until `done` holds or `timeout` passes; returns the last scrape.
    func waitForMetrics(timeout: TimeInterval = 3, until done: (PrometheusScrape) -> Bool) throws -> PrometheusScrape {
        let deadline = Date() + timeout
        var scrape = try self.scrape()
        while !done(scrape) && Date() < deadline {
            usleep(50_000)
            scrape = try self.scrape()
        }
        return scrape
    }
}

/// Seconds since the epoch of a flow's RFC 3339 `time`.
func flowTime(_ flow: JSON) -> TimeInterval? {
    guard let text = flow["time"]?.stringValue, let nanos = RFC3339.parse(text) else { return nil }
    return TimeInterval(nanos) / 1e9
}

/// The seed article's frontend and backend-api with its policies in force: two pods, TCP echo servers on the
/// backend (8080 allowed, 9090 denied), registered as endpoints 1 and 2 of a running agent.
struct ObservabilityScenario {
    static let frontendID = 1
    static let backendID = 2

    var agent: AgentProcess
    var frontend: Pod
    var backend: Pod
    /// Hosts outside the cluster, each with a TCP echo server on port 80.
    var externalHosts: [ExternalHost] = []
    /// Identity numbers and labels the agent gave the two endpoints.
    var frontendIdentity: Int64
    var frontendLabels: [JSON]
    var backendIdentity: Int64
    var backendLabels: [JSON]

    init(_ test: EndToEndTestCase, configFile: String? = nil, external: [String] = []) throws {
        let topology = try test.makeTopology()
        frontend = try topology.addPod(namespace: "web-tier", name: "frontend", dualStack: false)
        backend = try topology.addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        for port: UInt16 in [8080, 9090] { _ = try TCPServer(on: backend, port: port, in: topology) }
        for ip in external {
            let host = try topology.addExternalHost(ipv4: ip)
            _ = try TCPServer(on: host, port: 80, in: topology)
            externalHosts.append(host)
        }
        agent = try test.startAgent(in: topology, configFile: configFile)
        let front = try agent.registerEndpoint(id: Self.frontendID, pod: frontend, labels: ["k8s:app=frontend"])
        let back = try agent.registerEndpoint(id: Self.backendID, pod: backend, labels: ["k8s:app=backend-api"])
        for file in ["default-deny-all.yaml", "allow-traffic-policy.yaml"] {
            let result = try agent.nodectl("policy", "import", try test.fixture(file))
            guard result.status == 0 else { throw AgentHarnessError("policy import \(file): \(result.stderr)") }
        }
        try agent.waitForPolicyRevision()
        guard let frontIdentity = front["identity"]?["id"]?.intValue,
            let backIdentity = back["identity"]?["id"]?.intValue
        else { throw AgentHarnessError("endpoints without identity: \(front) \(back)") }
        frontendIdentity = frontIdentity
        frontendLabels = front["identity"]?["labels"]?.arrayValue ?? []
        backendIdentity = backIdentity
        backendLabels = back["identity"]?["labels"]?.arrayValue ?? []
    }
}

extension EndToEndTestCase {
    /// Writes an agent config file (JSON) that is removed when the test ends.
    func configFile(_ options: [String: JSON]) throws -> String {
        let path = "\(Topology.temporaryDirectory)/na-config-\(UUID().uuidString.prefix(8)).json"
        try JSON.object(options).serialized().write(toFile: path, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }
}
