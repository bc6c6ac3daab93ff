import HTTPClient

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The agent's HTTP client over its Unix socket, through libcurl: one connection per request, and a streaming mode
/// for long-lived chunked responses with idle ticks so a caller can stop a quiet stream.
public struct UnixHTTPClient: Sendable {
    public var socketPath: String
    /// Bound on connecting (and on writing the request).
    public var connectTimeout: Duration
    /// Bound on waiting for each read of a buffered response; nil waits forever.
    public var responseTimeout: Duration?

    public init(socketPath: String, connectTimeout: Duration = .seconds(5), responseTimeout: Duration? = .seconds(60)) {
        self.socketPath = socketPath
        self.connectTimeout = connectTimeout
        self.responseTimeout = responseTimeout
    }

    /// Sends `request` and reads the whole response.
    public func send(_ request: HTTPRequest) throws(ClientError) -> HTTPResponse {
        let transfer = try open(request)
        var body: [UInt8] = []
        while true {
            switch transfer.step(timeout: responseTimeout ?? .seconds(3600)) {
            case .progressed:
                body += transfer.takeBody()
            case .idle:
                if responseTimeout != nil {
                    throw .timeout(path: socketPath, seconds: responseTimeout?.seconds ?? 0)
                }
            case .finished(let error):
                if let error { throw clientError(error) }
                body += transfer.takeBody()
                guard let head = transfer.head else { throw .malformedResponse("no response head") }
                return HTTPResponse(head: head, body: body)
            }
        }
    }

    /// What the stream handler sees.
    public enum StreamEvent: Sendable, Equatable {
        /// Body bytes as they arrived (de-chunked).
        case data([UInt8])
        /// No data for `idleInterval`: a chance for the caller to decide to stop.
        case idle
    }

    /// What the stream handler wants next.
    public enum StreamAction: Sendable {
        case `continue`
        case stop
    }

    /// Sends `request` and hands the body to `handler` piece by piece as it arrives, until the server ends the
    /// response or `handler` returns `.stop` (the connection is then closed).
    ///
    /// A non-2xx answer is not streamed: its body is collected and returned in the result so the caller can
    /// read the agent's error. For a 2xx answer the returned body is empty (it went to `handler`).
    public func stream(
        _ request: HTTPRequest, idleInterval: Duration = .milliseconds(250),
        _ handler: (StreamEvent) -> StreamAction
    ) throws(ClientError) -> HTTPResponse {
        let transfer = try open(request)
        var errorBody: [UInt8] = []
        var waitedForHead = Duration.zero
        while true {
            let step = transfer.step(timeout: idleInterval)
            if case .finished(let error?) = step { throw clientError(error) }
            let bytes = transfer.takeBody()
            guard let head = transfer.head else {
                if case .finished = step { throw .malformedResponse("no response head") }
                // The head must still come within the response timeout; only the body may idle forever.
                waitedForHead += idleInterval
                if let limit = responseTimeout, waitedForHead >= limit {
                    throw .timeout(path: socketPath, seconds: limit.seconds)
                }
                continue
            }
            let success = (200..<300).contains(head.status)
            if !success {
                errorBody += bytes
            } else if !bytes.isEmpty, handler(.data(bytes)) == .stop {
                return HTTPResponse(head: head, body: [])
            }
            switch step {
            case .finished:
                return HTTPResponse(head: head, body: errorBody)
            case .idle where success:
                if handler(.idle) == .stop { return HTTPResponse(head: head, body: []) }
            default:
                continue
            }
        }
    }

    /// Like `stream`, but calls `handler` once per complete line (without its "\n"; a trailing "\r" is dropped),
    /// which is how newline-delimited JSON arrives. A last line without a newline is delivered when the response
    /// ends. `handler(nil)` is the idle tick.
    public func streamLines(
        _ request: HTTPRequest, idleInterval: Duration = .milliseconds(250),
        _ handler: (String?) -> StreamAction
    ) throws(ClientError) -> HTTPResponse {
        var splitter = LineSplitter()
        var stopped = false
        let response = try stream(request, idleInterval: idleInterval) { event in
            switch event {
            case .idle:
                if handler(nil) == .stop {
                    stopped = true
                    return .stop
                }
            case .data(let bytes):
                for line in splitter.feed(bytes) where handler(line) == .stop {
                    stopped = true
                    return .stop
                }
            }
            return .continue
        }
        if !stopped, response.isSuccess, let rest = splitter.remainder() {
            _ = handler(rest)
        }
        return response
    }

    /// Starts the transfer. A listener whose backlog is full is tried again until the connect timeout passes,
    /// as a blocking connect would wait for room.
    private func open(_ request: HTTPRequest) throws(ClientError) -> CurlTransfer {
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        let length = socketPath.utf8.count
        guard length > 0 else { throw .invalidRequest("socket path is empty") }
        guard length < capacity else {
            throw .invalidRequest("socket path \(socketPath) is \(length) bytes long; the limit is \(capacity - 1)")
        }
        let deadline = ContinuousClock.now + connectTimeout
        let options = TransferOptions(unixSocketPath: socketPath, connectTimeout: connectTimeout, userAgent: "nodectl")
        while true {
            let transfer: CurlTransfer
            do {
                transfer = try CurlTransfer(request, baseURL: "http://localhost", options: options)
            } catch {
                throw .invalidRequest(error.detail)
            }
            guard let error = transfer.start() else { return transfer }
            guard Self.backlogFull(error), ContinuousClock.now < deadline else { throw clientError(error) }
            usleep(10_000)
        }
    }

    /// A listener whose backlog is full refuses a non-blocking connect with EAGAIN: worth another try.
    private static func backlogFull(_ error: TransferError) -> Bool {
        error.kind == .couldNotConnect && error.osErrno == EAGAIN
    }

    /// libcurl's failure in the client's terms: nothing listening is `notRunning` with the system's reason, a
    /// connection that broke is `connectionLost`, bytes that are not HTTP/1.1 as the agent speaks it are
    /// `malformedResponse`.
    private func clientError(_ error: TransferError) -> ClientError {
        switch error.kind {
        case .couldNotConnect:
            if Self.backlogFull(error) { return .timeout(path: socketPath, seconds: connectTimeout.seconds) }
            return .notRunning(path: socketPath, reason: error.reason)
        case .timedOut:
            return .timeout(path: socketPath, seconds: connectTimeout.seconds)
        case .connectionLost:
            return .connectionLost(path: socketPath, reason: error.detail)
        case .tls, .failed:
            return .malformedResponse(error.detail)
        }
    }
}
