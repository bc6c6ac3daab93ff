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
                if let error { throw error }
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
            if case .finished(let error?) = step { throw error }
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
        while true {
            let transfer = try CurlTransfer(request, socketPath: socketPath, connectTimeout: connectTimeout)
            guard let error = transfer.start() else { return transfer }
            guard transfer.backlogFull, ContinuousClock.now < deadline else { throw error }
            usleep(10_000)
        }
    }
}

/// Splits a byte stream into lines; bytes of a line split across reads are kept until its newline comes.
struct LineSplitter {
    private var pending: [UInt8] = []

    mutating func feed(_ bytes: [UInt8]) -> [String] {
        pending.append(contentsOf: bytes)
        var lines: [String] = []
        var start = pending.startIndex
        // Scan once and drop the consumed prefix once, so a chunk with many lines costs linear time.
        while let lf = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
            var line = pending[start..<lf]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            lines.append(String(decoding: line, as: UTF8.self))
            start = lf + 1
        }
        pending.removeFirst(start - pending.startIndex)
        return lines
    }

    /// What is left after the last newline, if anything.
    mutating func remainder() -> String? {
        defer { pending.removeAll() }
        return pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self)
    }
}
