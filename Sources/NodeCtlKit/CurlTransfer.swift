import CCurl

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// One HTTP request to a Unix socket through libcurl, driven in bounded steps (libcurl's multi interface) so the
/// caller can notice silence, stop an endless stream, or time out with its own clock.
///
/// Used from one thread; dropping the transfer closes its connection.
final class CurlTransfer {
    /// What one `step` saw.
    enum Step {
        /// The response head and/or body bytes arrived (read them with `head` and `takeBody()`).
        case progressed
        /// Nothing arrived within the step's time.
        case idle
        /// The transfer ended; `nil` when it completed, else why it failed.
        case finished(ClientError?)
    }

    private let easy: UnsafeMutableRawPointer
    private let multi: UnsafeMutableRawPointer
    private let receiver = Receiver()
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
    private let socketPath: String
    private let connectTimeout: Duration
    private var finished = false
    /// The connect failed only because the listener's backlog was full (the caller may try again).
    private(set) var backlogFull = false

    /// The status line and headers of the final (non-1xx) response, once they arrived.
    var head: HTTPResponseHead? { receiver.head }

    init(_ request: HTTPRequest, socketPath: String, connectTimeout: Duration) throws(ClientError) {
        _ = CurlTransfer.globalInit
        guard let easy = curl_easy_init(), let multi = curl_multi_init() else {
            throw .invalidRequest("libcurl could not create a transfer")
        }
        self.easy = easy
        self.multi = multi
        self.socketPath = socketPath
        self.connectTimeout = connectTimeout
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        configure(request)
        curl_multi_add_handle(multi, easy)
    }

    deinit {
        curl_multi_remove_handle(multi, easy)
        curl_easy_cleanup(easy)
        curl_multi_cleanup(multi)
        curl_slist_free_all(headerList)
        errorBuffer.deallocate()
    }

    /// Body bytes received since the last call.
    func takeBody() -> [UInt8] {
        defer { receiver.body.removeAll(keepingCapacity: true) }
        return receiver.body
    }

    /// Connects and sends as far as the socket takes it; the error when that already failed (nothing listening,
    /// or a full backlog: see `backlogFull`).
    func start() -> ClientError? {
        var running: Int32 = 0
        curl_multi_perform(multi, &running)
        return completion()?.error
    }

    /// Moves the transfer on until something arrives, it ends, or `timeout` passes.
    func step(timeout: Duration) -> Step {
        let deadline = ContinuousClock.now + timeout
        while true {
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            if let outcome = completion() { return .finished(outcome.error) }
            if receiver.takeProgress() { return .progressed }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return .idle }
            var ready: Int32 = 0
            curl_multi_poll(multi, nil, 0, Int32(max(1, left.milliseconds)), &ready)
        }
    }

    private struct Completion { var error: ClientError? }

    /// The transfer's result once libcurl reports it done.
    private func completion() -> Completion? {
        if finished { return Completion(error: nil) }
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE else { continue }
            finished = true
            let code = message.pointee.data.result
            return Completion(error: code == CURLE_OK ? nil : error(for: code))
        }
        return nil
    }

    /// libcurl's failure in the client's terms: nothing listening is `notRunning` with the system's reason, a
    /// connection that broke is `connectionLost`, bytes that are not HTTP/1.1 as the agent speaks it are
    /// `malformedResponse`.
    private func error(for code: CURLcode) -> ClientError {
        let detail = errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(code))
        switch code {
        case CURLE_COULDNT_CONNECT:
            var osErrno = 0
            nc_curl_get_long(easy, CURLINFO_OS_ERRNO, &osErrno)
            // A listener whose backlog is full refuses a non-blocking connect with EAGAIN: worth another try.
            if osErrno == Int(EAGAIN) {
                backlogFull = true
                return .timeout(path: socketPath, seconds: connectTimeout.seconds)
            }
            return .notRunning(path: socketPath, reason: osErrno != 0 ? errnoText(Int32(osErrno)) : detail)
        case CURLE_OPERATION_TIMEDOUT:
            return .timeout(path: socketPath, seconds: connectTimeout.seconds)
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR:
            return .connectionLost(path: socketPath, reason: detail)
        default:
            return .malformedResponse(detail)
        }
    }

    private func configure(_ request: HTTPRequest) {
        // The host part only fills the Host header: the connection goes to the socket.
        nc_curl_set_string(easy, CURLOPT_URL, "http://localhost" + request.target)
        nc_curl_set_string(easy, CURLOPT_UNIX_SOCKET_PATH, socketPath)
        nc_curl_set_long(easy, CURLOPT_CONNECTTIMEOUT_MS, max(1, connectTimeout.milliseconds))
        nc_curl_set_long(easy, CURLOPT_NOSIGNAL, 1)
        nc_curl_set_string(easy, CURLOPT_USERAGENT, "nodectl")
        nc_curl_set_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer)
        var headers = ["Accept: application/json", "Connection: close", "Expect:"]
        switch request.method {
        case "GET":
            break
        case "HEAD":
            nc_curl_set_long(easy, CURLOPT_NOBODY, 1)
        default:
            nc_curl_set_string(easy, CURLOPT_CUSTOMREQUEST, request.method)
        }
        if let body = request.body {
            // COPYPOSTFIELDS copies the bytes, so the array need not outlive this call.
            nc_curl_set_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
            var bytes = body + [0]  // never empty, so there is always a base address
            bytes.withUnsafeMutableBytes { nc_curl_set_pointer(easy, CURLOPT_COPYPOSTFIELDS, $0.baseAddress) }
            headers.append("Content-Type: application/json")
        } else if request.method == "PUT" || request.method == "POST" || request.method == "PATCH" {
            // An empty body still says so (Content-Length: 0), without libcurl's form content type.
            nc_curl_set_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, 0)
            nc_curl_set_string(easy, CURLOPT_COPYPOSTFIELDS, "")
            headers.append("Content-Type:")
        }
        for header in headers { headerList = curl_slist_append(headerList, header) }
        nc_curl_set_pointer(easy, CURLOPT_HTTPHEADER, headerList)
        let context = Unmanaged.passUnretained(receiver).toOpaque()
        nc_curl_set_callback(easy, CURLOPT_HEADERFUNCTION, receiveHeader)
        nc_curl_set_pointer(easy, CURLOPT_HEADERDATA, context)
        nc_curl_set_callback(easy, CURLOPT_WRITEFUNCTION, receiveBody)
        nc_curl_set_pointer(easy, CURLOPT_WRITEDATA, context)
    }

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()
}

/// What libcurl's callbacks fill in: the response head line by line, and body bytes.
private final class Receiver {
    var head: HTTPResponseHead?
    var body: [UInt8] = []
    private var status = 0
    private var reason = ""
    private var headers: [String: String] = [:]
    private var progressed = false

    /// Whether anything arrived since the last call.
    func takeProgress() -> Bool {
        defer { progressed = false }
        return progressed
    }

    /// One header line as libcurl hands it over: a status line, a field, or the blank line ending a head. An
    /// interim (1xx) response's head is read and forgotten.
    func header(_ line: String) {
        // "\r\n" is one Character in Swift: trim line ends by Character, not by count.
        var text = Substring(line)
        while let last = text.last, last.isNewline { text.removeLast() }
        if text.hasPrefix("HTTP/") {
            let parts = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            reason = parts.count > 2 ? String(parts[2]) : ""
            headers = [:]
        } else if text.isEmpty {
            if status >= 200 {
                head = HTTPResponseHead(status: status, reason: reason, headers: headers)
                progressed = true
            }
        } else if let colon = text.firstIndex(of: ":") {
            let name = text[..<colon].lowercased()
            let value = text[text.index(after: colon)...].trimmingSpaces()
            // Repeated fields are one list (RFC 9110 §5.3).
            headers[name] = headers[name].map { "\($0), \(value)" } ?? value
        }
    }

    func data(_ bytes: UnsafeRawBufferPointer) {
        body.append(contentsOf: bytes)
        progressed = true
    }
}

private let receiveHeader: curl_write_callback = { buffer, size, count, context in
    let length = size * count
    guard let buffer, let context else { return length }
    let line = String(decoding: UnsafeRawBufferPointer(start: buffer, count: length), as: UTF8.self)
    Unmanaged<Receiver>.fromOpaque(context).takeUnretainedValue().header(line)
    return length
}

private let receiveBody: curl_write_callback = { buffer, size, count, context in
    let length = size * count
    guard let buffer, let context else { return length }
    let bytes = UnsafeRawBufferPointer(start: buffer, count: length)
    Unmanaged<Receiver>.fromOpaque(context).takeUnretainedValue().data(bytes)
    return length
}

extension Substring {
    fileprivate func trimmingSpaces() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}

extension Duration {
    /// The duration in seconds, as a Double (for messages).
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }

    /// Whole milliseconds, rounded up so a positive duration never becomes zero.
    var milliseconds: Int {
        let (s, atto) = components
        return Int(s) * 1000 + Int((atto + 999_999_999_999_999) / 1_000_000_000_000_000)
    }
}

/// The text of `errno` (or the given code), e.g. "No such file or directory".
func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}
