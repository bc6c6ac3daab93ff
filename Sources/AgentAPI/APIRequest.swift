/// HTTP methods the API routes on.
public enum HTTPMethod: String, Sendable, CaseIterable {
    case GET, PUT, POST, PATCH, DELETE, HEAD

    /// Whether requests with this method change agent state (and so are logged with the caller's credentials).
    public var isMutating: Bool {
        switch self {
        case .PUT, .POST, .PATCH, .DELETE: return true
        case .GET, .HEAD: return false
        }
    }
}

/// The credentials of the process at the other end of the Unix socket (SO_PEERCRED).
public struct PeerCredentials: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32

    public init(uid: UInt32, gid: UInt32, pid: Int32) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
    }
}

/// One API request as handlers see it, independent of the HTTP server.
public struct APIRequest: Sendable {
    public var method: HTTPMethod
    /// The decoded path, without the query string.
    public var path: String
    public var query: [String: String]
    /// Header names lower-cased.
    public var headers: [String: String]
    public var body: [UInt8]
    /// Values of the route pattern's `{name}` segments, filled in by the router.
    public var pathParameters: [String: String]
    public var peer: PeerCredentials?

    public init(
        method: HTTPMethod, path: String, query: [String: String] = [:], headers: [String: String] = [:],
        body: [UInt8] = [], pathParameters: [String: String] = [:], peer: PeerCredentials? = nil
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.pathParameters = pathParameters
        self.peer = peer
    }

    /// The body parsed as JSON; 400 `invalid-json` when it is empty or malformed.
    public func jsonBody() throws(AgentError) -> JSON {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            throw .invalidJSON("request body is empty; expected a JSON document")
        }
        return try JSON.parse(body)
    }
}
