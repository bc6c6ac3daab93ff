import AgentAPI
import HTTPClient

/// Typed access to the agent's REST API: one method per route, JSON in and out.
///
/// Every method throws `ClientError`: `.server` carries the agent's own error (code, message, field) for a
/// non-2xx answer; the other cases mean no usable answer came back.
public struct AgentClient: Sendable {
    public let http: UnixHTTPClient

    public init(http: UnixHTTPClient) {
        self.http = http
    }

    public init(socketPath: String, connectTimeout: Duration = .seconds(5), responseTimeout: Duration? = .seconds(60)) {
        self.http = UnixHTTPClient(
            socketPath: socketPath, connectTimeout: connectTimeout, responseTimeout: responseTimeout)
    }

    public var socketPath: String { http.socketPath }

    /// Sends one request and decodes the answer: the JSON body for 2xx (`null` for an empty body), otherwise
    /// the agent's error.
    public func request(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: JSON? = nil
    ) throws(ClientError) -> JSON {
        try decode(sendRaw(method, path, query: query, body: body), method: method, path: path)
    }

    /// Sends one request and returns the response as it came, whatever its status.
    public func sendRaw(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: JSON? = nil
    ) throws(ClientError) -> HTTPResponse {
        let request = HTTPRequest(
            method: method.rawValue, target: Self.target(path, query: query),
            body: body.map { Array($0.serialized().utf8) })
        return try http.send(request)
    }

    /// "/v1/endpoint" plus "?labels=..." with each value percent-encoded.
    public static func target(_ path: String, query: [(String, String)]) -> String {
        guard !query.isEmpty else { return path }
        let pairs = query.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }
        return path + "?" + pairs.joined(separator: "&")
    }

    func decode(_ response: HTTPResponse, method: HTTPMethod, path: String) throws(ClientError) -> JSON {
        guard response.isSuccess else { throw .server(Self.agentError(from: response)) }
        if response.body.allSatisfy(JSON.isSpace) { return .null }
        do {
            return try JSON.parse(response.body)
        } catch {
            throw .malformedResponse("\(method.rawValue) \(path) answered \(response.status) with \(error.message)")
        }
    }

    /// The agent's error from a non-2xx response: `{"error":{"code","message","field"}}`. Anything else (a body
    /// from something that is not the agent, or none) still becomes an error that says what came back.
    public static func agentError(from response: HTTPResponse) -> AgentError {
        if let json = try? JSON.parse(response.body), let error = json["error"],
            let code = error["code"]?.stringValue, let message = error["message"]?.stringValue
        {
            return AgentError(
                code: AgentError.Code(code), status: response.status, message: message,
                field: error["field"]?.stringValue)
        }
        let text = String(decoding: response.body.prefix(200), as: UTF8.self)
            .trimmingCharacters(in: " \r\n\t")
        var message = "agent answered \(response.status)"
        if !response.head.reason.isEmpty { message += " \(response.head.reason)" }
        if !text.isEmpty { message += ": \(text)" }
        let code: AgentError.Code = response.status >= 500 ? .internal : AgentError.Code("http-\(response.status)")
        return AgentError(code: code, status: response.status, message: message)
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters and the few that labels and selectors use and
/// that are safe in a query value (`:`, `,`, `/`); `=`, `&`, `+` and `%` are always encoded.
func percentEncode(_ text: String) -> String {
    var out = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"), UInt8(ascii: ":"), UInt8(ascii: ","), UInt8(ascii: "/"):
            out.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            let hex = Array("0123456789ABCDEF")
            out += "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0x0F)])
        }
    }
    return out
}

extension String {
    /// The string without leading and trailing characters from `set`.
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        guard let first = firstIndex(where: { !chars.contains($0) }),
            let last = lastIndex(where: { !chars.contains($0) })
        else { return "" }
        return String(self[first...last])
    }
}
