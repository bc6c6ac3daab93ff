import DatapathCore
import Policy

/// `GET /v1/policy/trace`: the verdict policy gives a would-be flow, and the rules that decide it.
extension NodeAgent {
    func trace(_ request: APIRequest) throws -> JSON {
        guard let srcText = request.query["src"], !srcText.isEmpty else {
            throw AgentError.invalidField("src", "is required: an endpoint id, namespace/pod, an IP, or labels")
        }
        guard let dstText = request.query["dst"], !dstText.isEmpty else {
            throw AgentError.invalidField("dst", "is required: an endpoint id, namespace/pod, an IP, or labels")
        }
        let port = UInt16(try request.queryInt("dport", in: 0...65535) ?? 0)
        let protoText = request.query["protocol"] ?? "TCP"
        guard let proto = IPProtocol.number(of: protoText), proto != 0 else {
            throw AgentError.invalidField("protocol", "\"\(protoText)\" is not one of TCP, UDP, SCTP, ICMP, ICMPv6")
        }
        let httpRequest = try traceHTTPRequest(request, proto: proto)
        let (mode, allowLocalhost) = runtime.withLock {
            ($0.policyEnforcement, $0.allowLocalhost)
        }
        return try state.withLock { state in
            let source = try tracePeer(srcText, field: "src", state: state)
            let destination = try tracePeer(dstText, field: "dst", state: state)
            var result = state.policy.trace(
                from: source, to: destination, proto: proto, dport: port, identities: state.identityList,
                services: servicePeers(in: state).resolved(prefixIDs: [:]), mode: mode, request: httpRequest)
            if allowLocalhost == .always, source.identity == UInt32(NA_ID_HOST.rawValue), destination.isLocalEndpoint {
                Self.admitLocalhost(&result)
            }
            var json = result.json.objectValue ?? [:]
            json["source"] = peerJSON(source)
            json["destination"] = peerJSON(destination)
            return .object(json)
        }
    }

    /// `http-method`, `http-path`, `http-host`: a request to decide against the destination port's HTTP rules
    /// (method GET and path `/` when only some are given); nil when none is.
    private func traceHTTPRequest(_ request: APIRequest, proto: UInt8) throws -> HTTPRequestHead? {
        let method = request.query["http-method"]
        let path = request.query["http-path"]
        let host = request.query["http-host"]
        if method == nil && path == nil && host == nil { return nil }
        guard proto == 6 else {
            throw AgentError.invalidField("protocol", "an HTTP request (http-method, http-path, http-host) needs TCP")
        }
        return HTTPRequestHead(method: method ?? "GET", path: path ?? "/", host: host ?? "")
    }

    /// What the datapath does with allow-localhost=always: the node's traffic passes the destination's ingress.
    static func admitLocalhost(_ result: inout TraceResult) {
        result.ingress.decision = PolicyDecision(verdict: .allowed, reason: .notEnforced)
        result.ingress.rules = []
        result.ingress.reason = "allowed: traffic from the node itself passes ingress policy (allow-localhost=always)"
        guard result.egress.decision.verdict == .allowed else { return }
        result.verdict = .allowed
        result.reason = "egress: \(result.egress.reason); ingress: \(result.ingress.reason)"
    }

    private func peerJSON(_ peer: TracePeer) -> JSON {
        [
            "identity": .int(Int64(peer.identity)), "labels": .array(peer.labels.strings.map { .string($0) }),
            "local-endpoint": .bool(peer.isLocalEndpoint),
        ]
    }

    /// Resolves an endpoint id, `namespace/pod`, an IP address, or a comma-separated label list.
    private func tracePeer(_ text: String, field: String, state: AgentState) throws -> TracePeer {
        func peer(_ endpoint: Endpoint) -> TracePeer {
            let labels = state.identities.identity(id: endpoint.identity)?.labels ?? endpoint.labels
            return TracePeer(identity: endpoint.identity, labels: labels)
        }
        if let id = UInt32(text) {
            guard let endpoint = state.endpoints[id] else {
                throw AgentError.notFound("\(field): endpoint \(id) does not exist")
            }
            return peer(endpoint)
        }
        if let address = IPAddress(text) {
            if let endpoint = state.endpoints.endpoint(withAddress: address) { return peer(endpoint) }
            let identity =
                state.hostAddresses.contains(address) ? UInt32(NA_ID_HOST.rawValue) : UInt32(NA_ID_WORLD.rawValue)
            let labels = state.identities.identity(id: identity)?.labels ?? LabelSet()
            return TracePeer(identity: identity, labels: labels, isLocalEndpoint: false)
        }
        if !text.contains("="), text.split(separator: "/").count == 2 {
            let parts = text.split(separator: "/").map(String.init)
            guard
                let endpoint = state.endpoints.values.first(where: {
                    ($0.k8sNamespace ?? "default") == parts[0] && $0.k8sPodName == parts[1]
                })
            else { throw AgentError.notFound("\(field): no endpoint for pod \(text)") }
            return peer(endpoint)
        }
        let labels = try LabelSet(parsing: text.split(separator: ",").map(String.init), field: field)
        let filtered = state.identities.filter.apply(labels)
        if let identity = state.identities.identity(labels: filtered) {
            return TracePeer(identity: identity.id, labels: identity.labels)
        }
        // A label set no endpoint has yet: trace it as a would-be identity.
        return TracePeer(identity: IdentityAllocator.lastLocal, labels: filtered)
    }
}
