import AgentAPI
import HTTPClient

/// Which flows to ask `GET /v1/flows` for; nil fields are not sent. The agent validates every value.
public struct FlowSelection: Sendable, Equatable {
    public var verdict: String?
    public var fromPod: String?
    public var toPod: String?
    public var pod: String?
    public var fromEndpoint: Int?
    public var toEndpoint: Int?
    /// Labels one side must carry, e.g. `k8s:app=frontend`.
    public var labels: [String] = []
    public var ip: String?
    public var fromIP: String?
    public var toIP: String?
    public var port: Int?
    public var transport: String?
    /// A reason name (`policy denied`) or code (`133`).
    public var reason: String?
    /// RFC 3339 or unix seconds.
    public var since: String?
    public var last: Int?
    /// `l7` (HTTP request decisions) or `l3-l4`.
    public var type: String?
    public var httpMethod: String?
    /// A regex the whole request-target must match.
    public var httpPath: String?

    public init() {}

    public var query: [(String, String)] {
        var query: [(String, String)] = []
        func add(_ name: String, _ value: String?) {
            if let value { query.append((name, value)) }
        }
        add("verdict", verdict)
        add("from-pod", fromPod)
        add("to-pod", toPod)
        add("pod", pod)
        add("from-endpoint", fromEndpoint.map(String.init))
        add("to-endpoint", toEndpoint.map(String.init))
        add("label", labels.isEmpty ? nil : labels.joined(separator: ","))
        add("ip", ip)
        add("from-ip", fromIP)
        add("to-ip", toIP)
        add("port", port.map(String.init))
        add("protocol", transport)
        add("reason", reason)
        add("since", since)
        add("type", type)
        add("http-method", httpMethod)
        add("http-path", httpPath)
        add("last", last.map(String.init))
        return query
    }
}

extension AgentClient {
    /// `GET /v1/flows`: `{"flows":[...]}`, oldest first.
    public func flows(_ selection: FlowSelection) throws(ClientError) -> JSON {
        try request(.GET, "/v1/flows", query: selection.query)
    }

    /// `GET /v1/flows?follow=true`: calls `handler` with each JSON line as it arrives (a flow, or `{"lost-flows":N}`
    /// when this follower fell behind) and `nil` on idle ticks, until the handler says stop or the agent ends the
    /// stream. A non-2xx answer throws the agent's error.
    public func followFlows(
        _ selection: FlowSelection, _ handler: (JSON?) -> UnixHTTPClient.StreamAction
    ) throws(ClientError) {
        let target = Self.target("/v1/flows", query: selection.query + [("follow", "true")])
        var failure: ClientError?
        let response = try http.streamLines(HTTPRequest(method: "GET", target: target)) { line in
            guard let line else { return handler(nil) }
            guard !line.isEmpty else { return .continue }
            do {
                return handler(try JSON.parse(line))
            } catch {
                failure = .malformedResponse(
                    "GET /v1/flows?follow=true sent a line that is not JSON: \(line.prefix(200))")
                return .stop
            }
        }
        if let failure { throw failure }
        guard response.isSuccess else { throw .server(Self.agentError(from: response)) }
    }

    /// `GET /v1/metrics`: the Prometheus text as it came.
    public func metricsText() throws(ClientError) -> String {
        let response = try sendRaw(.GET, "/v1/metrics")
        guard response.isSuccess else { throw .server(Self.agentError(from: response)) }
        return String(decoding: response.body, as: UTF8.self)
    }
}
