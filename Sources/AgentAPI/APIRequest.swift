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
    public var body: [UInt8]
    /// Values of the route pattern's `{name}` segments, filled in by the router.
    public var pathParameters: [String: String]
    /// Headers and the caller's credentials are looked up when a handler asks: most requests never do, and the
    /// server would otherwise build a dictionary and make a syscall for each.
    private let headerLookup: @Sendable (String) -> String?
    private let peerLookup: @Sendable () -> PeerCredentials?

    /// A request with its headers given (names in any case).
    public init(
        method: HTTPMethod, path: String, query: [String: String] = [:], headers: [String: String] = [:],
        body: [UInt8] = [], pathParameters: [String: String] = [:], peer: PeerCredentials? = nil
    ) {
        let lowered = Dictionary(
            headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        self.init(
            method: method, path: path, query: query, body: body, pathParameters: pathParameters,
            header: { lowered[$0] }, peer: { peer })
    }

    /// A request whose headers and credentials the server looks up on demand. `header` is given lower-case names;
    /// both are called only while the handler runs.
    public init(
        method: HTTPMethod, path: String, query: [String: String], body: [UInt8],
        pathParameters: [String: String] = [:],
        header: @escaping @Sendable (String) -> String?, peer: @escaping @Sendable () -> PeerCredentials?
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.pathParameters = pathParameters
        headerLookup = header
        peerLookup = peer
    }

    /// The value of header `name`, whatever its case; the first one when the header is repeated.
    public func header(_ name: String) -> String? { headerLookup(name.lowercased()) }

    /// The credentials of the process at the other end of the Unix socket (SO_PEERCRED), when there is one.
    public var peer: PeerCredentials? { peerLookup() }

    /// The body parsed as JSON; 400 `invalid-json` when it is empty or malformed.
    public func jsonBody() throws(AgentError) -> JSON {
        try checkBodyPresent()
        return try JSON.parse(body)
    }

    /// The body as `JSON.parse(_:elements:)` reads it: an array's elements handed to `element` one at a time (nil
    /// returned), any other document returned whole.
    public func jsonBody(elements element: (JSON) throws(AgentError) -> Void) throws(AgentError) -> JSON? {
        try checkBodyPresent()
        return try JSON.parse(body, elements: element)
    }

    private func checkBodyPresent() throws(AgentError) {
        if body.allSatisfy(JSON.isSpace) {
            throw .invalidJSON("request body is empty; expected a JSON document")
        }
    }
}
