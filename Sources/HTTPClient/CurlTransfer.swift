import CCurl

/// One HTTP request through libcurl, driven in bounded steps (libcurl's multi interface) so the caller can notice
/// silence, stop an endless stream, or time out with its own clock.
///
/// Used from one thread; only `waker` may be used from others. Dropping the transfer closes its connection.
public final class CurlTransfer {
    /// What one `step` saw.
    public enum Step {
        /// The response head and/or body bytes arrived (read them with `head` and `takeBody()`).
        case progressed
        /// Nothing arrived within the step's time, or `waker` cut the wait short.
        case idle
        /// The transfer ended; `nil` when it completed, else why it failed.
        case finished(TransferError?)
    }

    private let easy: UnsafeMutableRawPointer
    private let multi: UnsafeMutableRawPointer
    private let receiver = Receiver()
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
    private var finished = false

    /// Cuts a waiting `step` short from another thread (to cancel a stream promptly).
    public let waker: TransferWaker

    /// The status line and headers of the final (non-1xx) response, once they arrived.
    public var head: HTTPResponseHead? { receiver.head }

    /// A transfer of `request` to `baseURL` + `request.target` ("http://localhost" when `options` name a Unix
    /// socket, whose host part then only fills the Host header). Nothing is sent before `start` or `step`.
    public init(_ request: HTTPRequest, baseURL: String, options: TransferOptions) throws(TransferError) {
        if let failure = nc_curl_load() {
            throw TransferError(kind: .failed, detail: String(cString: failure))
        }
        guard let easy = nc_curl_easy_init(), let multi = nc_curl_multi_init() else {
            throw TransferError(kind: .failed, detail: "libcurl could not create a transfer")
        }
        self.easy = easy
        self.multi = multi
        waker = TransferWaker(multi: multi)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        configure(request, url: baseURL + request.target, options: options)
        nc_curl_multi_add_handle(multi, easy)
    }

    deinit {
        // No wake-up may reach the multi handle once it is gone.
        waker.invalidate()
        nc_curl_multi_remove_handle(multi, easy)
        nc_curl_easy_cleanup(easy)
        nc_curl_multi_cleanup(multi)
        nc_curl_slist_free_all(headerList)
        errorBuffer.deallocate()
    }

    /// Body bytes received since the last call.
    public func takeBody() -> [UInt8] {
        defer { receiver.body.removeAll(keepingCapacity: true) }
        return receiver.body
    }

    /// Connects and sends as far as the socket takes it; the error when that already failed.
    public func start() -> TransferError? {
        var running: Int32 = 0
        nc_curl_multi_perform(multi, &running)
        return completion()?.error
    }

    /// Moves the transfer on until something arrives, it ends, `timeout` passes or `waker` is woken.
    public func step(timeout: Duration) -> Step {
        let deadline = ContinuousClock.now + timeout
        while true {
            var running: Int32 = 0
            nc_curl_multi_perform(multi, &running)
            if let outcome = completion() { return .finished(outcome.error) }
            if receiver.takeProgress() { return .progressed }
            if waker.takeWoken() { return .idle }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return .idle }
            var ready: Int32 = 0
            nc_curl_multi_poll(multi, nil, 0, Int32(max(1, left.milliseconds)), &ready)
        }
    }

    /// Runs the transfer to its end and returns the whole response; bounded by the options' `totalTimeout`.
    public func response() throws(TransferError) -> HTTPResponse {
        var body: [UInt8] = []
        while true {
            switch step(timeout: .seconds(1)) {
            case .progressed, .idle:
                body += takeBody()
            case .finished(let error):
                if let error { throw error }
                body += takeBody()
                guard let head else { throw TransferError(kind: .failed, detail: "no response head") }
                return HTTPResponse(head: head, body: body)
            }
        }
    }

    private struct Completion { var error: TransferError? }

    /// The transfer's result once libcurl reports it done.
    private func completion() -> Completion? {
        if finished { return Completion(error: nil) }
        var left: Int32 = 0
        while let message = nc_curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE else { continue }
            finished = true
            let code = message.pointee.data.result
            return Completion(error: code == CURLE_OK ? nil : error(for: code))
        }
        return nil
    }

    /// libcurl's failure sorted into what a caller decides by, with libcurl's own text and the system's errno.
    private func error(for code: CURLcode) -> TransferError {
        let detail = errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: nc_curl_easy_strerror(code))
        var osErrno = 0
        nc_curl_get_long(easy, CURLINFO_OS_ERRNO, &osErrno)
        // The bytes of request heads libcurl wrote; 0 when the connection (or its TLS handshake) never came up.
        var requestSize = 0
        nc_curl_get_long(easy, CURLINFO_REQUEST_SIZE, &requestSize)
        let kind: TransferError.Kind
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            kind = .couldNotConnect
        case CURLE_OPERATION_TIMEDOUT:
            kind = .timedOut
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR:
            kind = .connectionLost
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CACERT_BADFILE,
            CURLE_SSL_CIPHER, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ISSUER_ERROR:
            kind = .tls
        default:
            kind = .failed
        }
        return TransferError(kind: kind, detail: detail, osErrno: Int32(osErrno), requestSent: requestSize > 0)
    }

    private func configure(_ request: HTTPRequest, url: String, options: TransferOptions) {
        nc_curl_set_string(easy, CURLOPT_URL, url)
        if let socketPath = options.unixSocketPath {
            nc_curl_set_string(easy, CURLOPT_UNIX_SOCKET_PATH, socketPath)
        }
        if let tls = options.tls {
            if let caFile = tls.caFile { nc_curl_set_string(easy, CURLOPT_CAINFO, caFile) }
            if let certFile = tls.certFile { nc_curl_set_string(easy, CURLOPT_SSLCERT, certFile) }
            if let keyFile = tls.keyFile { nc_curl_set_string(easy, CURLOPT_SSLKEY, keyFile) }
        }
        nc_curl_set_long(easy, CURLOPT_CONNECTTIMEOUT_MS, max(1, options.connectTimeout.milliseconds))
        if let total = options.totalTimeout {
            nc_curl_set_long(easy, CURLOPT_TIMEOUT_MS, max(1, total.milliseconds))
        }
        nc_curl_set_long(easy, CURLOPT_NOSIGNAL, 1)
        nc_curl_set_string(easy, CURLOPT_USERAGENT, options.userAgent)
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
            _ = bytes.withUnsafeMutableBytes { nc_curl_set_pointer(easy, CURLOPT_COPYPOSTFIELDS, $0.baseAddress) }
            headers.append("Content-Type: application/json")
        } else if request.method == "PUT" || request.method == "POST" || request.method == "PATCH" {
            // An empty body still says so (Content-Length: 0), without libcurl's form content type.
            nc_curl_set_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, 0)
            nc_curl_set_string(easy, CURLOPT_COPYPOSTFIELDS, "")
            headers.append("Content-Type:")
        }
        for header in headers { headerList = nc_curl_slist_append(headerList, header) }
        nc_curl_set_pointer(easy, CURLOPT_HTTPHEADER, headerList)
        let context = Unmanaged.passUnretained(receiver).toOpaque()
        nc_curl_set_callback(easy, CURLOPT_HEADERFUNCTION, receiveHeader)
        nc_curl_set_pointer(easy, CURLOPT_HEADERDATA, context)
        nc_curl_set_callback(easy, CURLOPT_WRITEFUNCTION, receiveBody)
        nc_curl_set_pointer(easy, CURLOPT_WRITEDATA, context)
    }
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
