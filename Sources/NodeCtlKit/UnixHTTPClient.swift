/// A minimal HTTP/1.1 client over a Unix stream socket: one connection per request, `Connection: close`.
///
/// It speaks exactly what the agent needs: JSON bodies with Content-Length, responses framed by Content-Length,
/// chunked transfer-encoding or connection close, and a streaming mode for long-lived chunked responses.
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
        let socket = try open(request)
        socket.setReceiveTimeout(responseTimeout)
        var parser = HTTPResponseParser(requestMethod: request.method)
        var body: [UInt8] = []
        while !parser.isComplete {
            switch try socket.read() {
            case .data(let bytes):
                for piece in try parser.feed(bytes) { body.append(contentsOf: piece) }
            case .endOfStream:
                try parser.finish()
            case .wouldBlock:
                throw .timeout(path: socketPath, seconds: responseTimeout?.seconds ?? 0)
            }
        }
        guard let head = parser.head else { throw .malformedResponse("no response head") }
        return HTTPResponse(head: head, body: body)
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
        let socket = try open(request)
        socket.setReceiveTimeout(idleInterval)
        var parser = HTTPResponseParser(requestMethod: request.method)
        var errorBody: [UInt8] = []
        var waitedForHead = Duration.zero
        while !parser.isComplete {
            let pieces: [[UInt8]]
            switch try socket.read() {
            case .data(let bytes):
                pieces = try parser.feed(bytes)
            case .endOfStream:
                try parser.finish()
                pieces = []
            case .wouldBlock:
                if parser.head == nil {
                    // The head must still come within the response timeout; only the body may idle forever.
                    waitedForHead += idleInterval
                    if let limit = responseTimeout, waitedForHead >= limit {
                        throw .timeout(path: socketPath, seconds: limit.seconds)
                    }
                } else if parser.head.map({ (200..<300).contains($0.status) }) == true, handler(.idle) == .stop {
                    return HTTPResponse(head: parser.head!, body: [])
                }
                continue
            }
            guard let head = parser.head else { continue }
            if !(200..<300).contains(head.status) {
                for piece in pieces { errorBody.append(contentsOf: piece) }
                continue
            }
            for piece in pieces where !piece.isEmpty {
                if handler(.data(piece)) == .stop { return HTTPResponse(head: head, body: []) }
            }
        }
        guard let head = parser.head else { throw .malformedResponse("no response head") }
        return HTTPResponse(head: head, body: errorBody)
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
                if handler(nil) == .stop { stopped = true; return .stop }
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

    private func open(_ request: HTTPRequest) throws(ClientError) -> UnixStreamSocket {
        let socket = try UnixStreamSocket.connect(path: socketPath, timeout: connectTimeout)
        try socket.writeAll(request.serialized(), timeoutSeconds: connectTimeout.seconds)
        return socket
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
