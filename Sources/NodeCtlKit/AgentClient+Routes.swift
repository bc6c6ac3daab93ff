import AgentAPI
import HTTPClient

// One method per route of the agent's API (see openapi/openapi.yaml).

extension AgentClient {
    // MARK: Daemon

    /// `GET /v1/healthz`.
    public func healthz() throws(ClientError) -> JSON {
        try request(.GET, "/v1/healthz")
    }

    /// `GET /v1/cluster/nodes`: this node and the others it knows.
    public func clusterNodes() throws(ClientError) -> JSON {
        try request(.GET, "/v1/cluster/nodes")
    }

    /// `GET /v1/config`.
    public func config() throws(ClientError) -> JSON {
        try request(.GET, "/v1/config")
    }

    /// `PATCH /v1/config` with a subset of options; returns the full new configuration.
    public func patchConfig(_ changes: [String: JSON]) throws(ClientError) -> JSON {
        try request(.PATCH, "/v1/config", body: .object(changes))
    }

    // MARK: Maps

    /// `GET /v1/map`.
    public func maps() throws(ClientError) -> JSON {
        try request(.GET, "/v1/map")
    }

    /// `GET /v1/map/{name}`: one page of entries.
    public func map(named name: String, limit: Int? = nil, cursor: String? = nil) throws(ClientError) -> JSON {
        var query: [(String, String)] = []
        if let limit { query.append(("limit", String(limit))) }
        if let cursor { query.append(("cursor", cursor)) }
        return try request(.GET, "/v1/map/" + percentEncodeSegment(name), query: query)
    }

    /// Follows `next-cursor` pages of `GET /v1/map/{name}` until the map is exhausted or `limit` entries have
    /// been read. Returns `{"name":..., "entries":[...], "next-cursor": <cursor to resume at> | null}`.
    public func mapEntries(named name: String, limit: Int? = nil, pageSize: Int = 500) throws(ClientError) -> JSON {
        var entries: [JSON] = []
        var cursor: String?
        var seen: Set<String> = []
        var mapName = JSON.string(name)
        while true {
            let remaining = limit.map { $0 - entries.count }
            if let remaining, remaining <= 0 { break }
            let page = try map(named: name, limit: min(pageSize, remaining ?? pageSize), cursor: cursor)
            if let n = page["name"] { mapName = n }
            guard let pageEntries = page["entries"]?.arrayValue else {
                throw .malformedResponse("GET /v1/map/\(name): no \"entries\" array")
            }
            entries.append(contentsOf: pageEntries)
            guard let next = page["next-cursor"]?.stringValue, !next.isEmpty else {
                cursor = nil
                break
            }
            // A cursor that comes back twice would loop forever.
            guard seen.insert(next).inserted else {
                throw .malformedResponse("GET /v1/map/\(name): cursor \(next) repeated")
            }
            cursor = next
        }
        if let limit, entries.count > limit { entries.removeLast(entries.count - limit) }
        return ["name": mapName, "entries": .array(entries), "next-cursor": JSON(cursor)]
    }

    // MARK: Endpoints

    /// `GET /v1/endpoint`, optionally only endpoints carrying all `labels`.
    public func endpoints(labels: [String] = []) throws(ClientError) -> JSON {
        try request(.GET, "/v1/endpoint", query: labelsQuery(labels))
    }

    /// `GET /v1/endpoint/{id}`.
    public func endpoint(id: Int64) throws(ClientError) -> JSON {
        try request(.GET, "/v1/endpoint/\(id)")
    }

    /// `PUT /v1/endpoint/{id}` with an EndpointChangeRequest; `created` is true for 201, false for 200.
    public func putEndpoint(id: Int64, _ change: JSON) throws(ClientError) -> (endpoint: JSON, created: Bool) {
        let path = "/v1/endpoint/\(id)"
        let response = try sendRaw(.PUT, path, body: change)
        return (try decode(response, method: .PUT, path: path), response.status == 201)
    }

    /// `DELETE /v1/endpoint/{id}`.
    public func deleteEndpoint(id: Int64) throws(ClientError) -> JSON {
        try request(.DELETE, "/v1/endpoint/\(id)")
    }

    /// `PATCH /v1/endpoint/{id}/labels` adding and removing labels.
    public func patchEndpointLabels(id: Int64, add: [String], delete: [String]) throws(ClientError) -> JSON {
        try request(.PATCH, "/v1/endpoint/\(id)/labels", body: ["add": JSON(add), "delete": JSON(delete)])
    }

    /// `PATCH /v1/endpoint/{id}/labels` replacing all labels.
    public func replaceEndpointLabels(id: Int64, labels: [String]) throws(ClientError) -> JSON {
        try request(.PATCH, "/v1/endpoint/\(id)/labels", body: ["labels": JSON(labels)])
    }

    /// `GET /v1/endpoint/{id}/policy`: the entries realized in the endpoint's datapath policy map.
    public func endpointPolicy(id: Int64) throws(ClientError) -> JSON {
        try request(.GET, "/v1/endpoint/\(id)/policy")
    }

    // MARK: Identities

    /// `GET /v1/identity`, optionally only identities carrying all `labels`.
    public func identities(labels: [String] = []) throws(ClientError) -> JSON {
        try request(.GET, "/v1/identity", query: labelsQuery(labels))
    }

    /// `GET /v1/identity/{id}`.
    public func identity(id: Int64) throws(ClientError) -> JSON {
        try request(.GET, "/v1/identity/\(id)")
    }

    // MARK: Policy

    /// `PUT /v1/policy` with one policy object (CiliumNetworkPolicy, NetworkPolicy) or an array of them.
    public func putPolicy(_ documents: JSON) throws(ClientError) -> JSON {
        try request(.PUT, "/v1/policy", body: documents)
    }

    /// `GET /v1/policy`.
    public func policies() throws(ClientError) -> JSON {
        try request(.GET, "/v1/policy")
    }

    /// `DELETE /v1/policy` for one policy, a namespace, or everything.
    public func deletePolicies(_ selection: PolicySelection) throws(ClientError) -> JSON {
        try request(.DELETE, "/v1/policy", query: selection.query)
    }

    /// `GET /v1/policy/trace`.
    public func tracePolicy(_ trace: TraceRequest) throws(ClientError) -> JSON {
        try request(.GET, "/v1/policy/trace", query: trace.query)
    }

    private func labelsQuery(_ labels: [String]) -> [(String, String)] {
        labels.isEmpty ? [] : [("labels", labels.joined(separator: ","))]
    }
}

/// Which policies a delete removes.
public enum PolicySelection: Sendable, Equatable {
    /// `kind` (`NetworkPolicy`, `CiliumNetworkPolicy`) picks one when a NetworkPolicy and a CiliumNetworkPolicy
    /// share the name.
    case one(namespace: String, name: String, kind: String? = nil)
    case namespace(String)
    case all

    var query: [(String, String)] {
        switch self {
        case .one(let namespace, let name, let kind):
            return [("namespace", namespace), ("name", name)] + (kind.map { [("kind", $0)] } ?? [])
        case .namespace(let namespace): return [("namespace", namespace)]
        case .all: return [("all", "true")]
        }
    }
}

/// A policy trace question: would traffic from `source` to `destination` on `port`/`protocol` be allowed?
/// Selectors are an endpoint id, `namespace/pod`, an IP address, or comma-separated labels.
public struct TraceRequest: Sendable, Equatable {
    public var source: String
    public var destination: String
    public var port: UInt16?
    /// "TCP", "UDP", "SCTP", "ICMP", ... as the agent spells them.
    public var transport: String?
    /// A request to decide against the destination port's HTTP rules (`http-method`, `http-path`, `http-host`).
    public var httpMethod: String?
    public var httpPath: String?
    public var httpHost: String?

    public init(
        source: String, destination: String, port: UInt16? = nil, transport: String? = nil,
        httpMethod: String? = nil, httpPath: String? = nil, httpHost: String? = nil
    ) {
        self.source = source
        self.destination = destination
        self.port = port
        self.transport = transport
        self.httpMethod = httpMethod
        self.httpPath = httpPath
        self.httpHost = httpHost
    }

    var query: [(String, String)] {
        var query = [("src", source), ("dst", destination)]
        if let port { query.append(("dport", String(port))) }
        if let transport { query.append(("protocol", transport)) }
        if let httpMethod { query.append(("http-method", httpMethod)) }
        if let httpPath { query.append(("http-path", httpPath)) }
        if let httpHost { query.append(("http-host", httpHost)) }
        return query
    }
}

/// Encodes a path segment: like a query value, but `/` must not pass through.
func percentEncodeSegment(_ text: String) -> String {
    percentEncode(text).replacingOccurrences(of: "/", with: "%2F")
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
