import AgentAPI

/// Why a request to the agent failed.
///
/// Server-side failures (a well-formed non-2xx answer) are reported as `server`, carrying the agent's own
/// error code and message so the CLI can print exactly what the agent said.
public enum ClientError: Error, Sendable, Equatable {
    /// The agent answered with a non-2xx status; its error as it sent it.
    case server(AgentError)
    /// Nothing accepted the connection on the socket (missing file, refused, permission denied, ...).
    case notRunning(path: String, reason: String)
    /// The agent accepted the connection but did not answer in time.
    case timeout(path: String, seconds: Double)
    /// Reading or writing the connection failed after it was established.
    case connectionLost(path: String, reason: String)
    /// The bytes that came back are not an HTTP/1.1 response we can read.
    case malformedResponse(String)
    /// The request could not be formed (for example a socket path longer than `sun_path`).
    case invalidRequest(String)
}

extension ClientError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .server(let error):
            return error.message
        case .notRunning(let path, let reason):
            return "cannot connect to nodeagent at \(path): \(reason) (is the agent running?)"
        case .timeout(let path, let seconds):
            return "no answer from nodeagent at \(path) within \(formatSeconds(seconds))"
        case .connectionLost(let path, let reason):
            return "connection to nodeagent at \(path) failed: \(reason)"
        case .malformedResponse(let what):
            return "malformed response from nodeagent: \(what)"
        case .invalidRequest(let what):
            return what
        }
    }
}

private func formatSeconds(_ seconds: Double) -> String {
    if seconds == seconds.rounded() { return "\(Int(seconds))s" }
    return "\(seconds)s"
}
