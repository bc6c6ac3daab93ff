/// A response a handler returns; the HTTP server turns it into bytes on the wire.
public struct APIResponse: Sendable {
    public var status: Int
    public var body: [UInt8]
    public var contentType: String
    /// Extra headers, e.g. `Allow` on a 405.
    public var headers: [String: String]
    /// A streaming (chunked) body instead of `body`: the server calls it repeatedly from its own thread. It returns
    /// nil at the end, an empty array for "nothing yet" (the server waits briefly and asks again), or the next bytes.
    /// When the client goes away the server stops calling it and drops it, releasing whatever it captured.
    public var stream: (@Sendable () -> [UInt8]?)?

    public init(
        status: Int, body: [UInt8], contentType: String, headers: [String: String] = [:],
        stream: (@Sendable () -> [UInt8]?)? = nil
    ) {
        self.status = status
        self.body = body
        self.contentType = contentType
        self.headers = headers
        self.stream = stream
    }

    /// A JSON body, compact with keys sorted.
    public static func json(_ value: JSON, status: Int = 200) -> APIResponse {
        APIResponse(status: status, body: value.serializedBytes(), contentType: "application/json")
    }

    /// A text body; the default content type is Prometheus' text exposition format.
    public static func text(_ s: String, status: Int = 200, contentType: String = "text/plain; version=0.0.4")
        -> APIResponse
    {
        APIResponse(status: status, body: Array(s.utf8), contentType: contentType)
    }

    /// The error's JSON at the error's status.
    public static func error(_ e: AgentError) -> APIResponse {
        json(e.json, status: e.status)
    }

    /// 204 with no body.
    public static var noContent: APIResponse {
        APIResponse(status: 204, body: [], contentType: "application/json")
    }

    /// A chunked response whose body comes from `next`; see ``stream``.
    public static func streaming(
        status: Int = 200, contentType: String = "application/json", next: @escaping @Sendable () -> [UInt8]?
    ) -> APIResponse {
        APIResponse(status: status, body: [], contentType: contentType, stream: next)
    }
}
