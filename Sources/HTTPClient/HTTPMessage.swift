/// An HTTP request as the client sends it.
public struct HTTPRequest: Sendable, Equatable {
    /// "GET", "PUT", ...
    public var method: String
    /// Path plus query, already percent-encoded, e.g. "/v1/endpoint?labels=k8s%3Aapp%3Dx".
    public var target: String
    /// Body bytes; nil sends no body and no Content-Type.
    public var body: [UInt8]?

    public init(method: String, target: String, body: [UInt8]? = nil) {
        self.method = method
        self.target = target
        self.body = body
    }
}

/// Status line and headers of a response.
public struct HTTPResponseHead: Sendable, Equatable {
    public var status: Int
    public var reason: String
    /// Header names lower-cased; repeated headers joined with ", " (RFC 9110 §5.3).
    public var headers: [String: String]

    public init(status: Int, reason: String, headers: [String: String]) {
        self.status = status
        self.reason = reason
        self.headers = headers
    }
}

/// A complete response.
public struct HTTPResponse: Sendable, Equatable {
    public var head: HTTPResponseHead
    public var body: [UInt8]

    public var status: Int { head.status }
    public var headers: [String: String] { head.headers }
    public var isSuccess: Bool { (200..<300).contains(head.status) }

    public init(head: HTTPResponseHead, body: [UInt8]) {
        self.head = head
        self.body = body
    }
}
