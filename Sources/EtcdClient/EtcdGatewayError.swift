import AgentAPI
import HTTPClient

/// An error answer of the JSON gateway: `{"error": "...", "message": "...", "code": <gRPC code>}` with an HTTP
/// status derived from the gRPC code.
struct EtcdGatewayError {
    /// The gRPC status code (google.golang.org/grpc/codes).
    var code: Int64
    var message: String
    var status: Int

    /// gRPC codes the client decides by.
    static let notFound: Int64 = 5
    static let failedPrecondition: Int64 = 9
    static let outOfRange: Int64 = 11
    static let unavailable: Int64 = 14
    static let deadlineExceeded: Int64 = 4

    /// The error in `response`, or nil when it is a success.
    init?(_ response: HTTPResponse) {
        guard !response.isSuccess else { return nil }
        status = response.status
        if let json = try? JSON.parse(response.body),
            let text = json["message"]?.stringValue ?? json["error"]?.stringValue
        {
            message = text
            code = json["code"]?.intValue ?? 2
        } else {
            message = "HTTP \(response.status) \(String(decoding: response.body.prefix(200), as: UTF8.self))"
            code = response.status == 503 ? Self.unavailable : 2
        }
    }

    init(json: JSON, status: Int) {
        self.status = status
        message = json["message"]?.stringValue ?? json["error"]?.stringValue ?? json.serialized()
        code = json["code"]?.intValue ?? 2
    }

    /// etcd cannot serve right now (no leader, shutting down): another member may.
    var isUnavailable: Bool { code == Self.unavailable || status == 503 }

    /// The error as the agent reports it: a missing lease is a 404, a compacted revision or failed precondition
    /// a 409, etcd unable to serve a 503, anything else a 500; the message always names etcd.
    var agentError: AgentError {
        let text = "etcd: \(message)"
        switch code {
        case Self.notFound: return .notFound(text)
        case Self.failedPrecondition, Self.outOfRange: return .conflict(text)
        case Self.unavailable, Self.deadlineExceeded: return .unavailable(text)
        default: return .internal(text)
        }
    }

    /// The JSON body of a successful answer, or the answer's error as an `AgentError`.
    static func decode(_ response: HTTPResponse, path: String) throws(AgentError) -> JSON {
        if let error = EtcdGatewayError(response) { throw error.agentError }
        do {
            return try JSON.parse(response.body)
        } catch {
            throw .internal("etcd \(path) answered with a body that is not JSON: \(error.message)")
        }
    }
}
