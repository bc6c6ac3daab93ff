#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A connected `AF_UNIX` stream socket that owns (and closes) its descriptor.
///
/// Used from one thread at a time: a request opens one, talks, and drops it.
final class UnixStreamSocket {
    let path: String
    private var fd: Int32

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close() }

    /// Connects to `path`. A refused or missing socket fails at once; a listener whose backlog is full makes
    /// Linux block the connect, and that wait is bounded by `SO_SNDTIMEO` (`unix_stream_connect` honours the
    /// send timeout), which is why the timeout is set before `connect` rather than with a non-blocking poll:
    /// a non-blocking `AF_UNIX` connect reports a full backlog as `EAGAIN` instead of waiting.
    static func connect(path: String, timeout: Duration) throws(ClientError) -> UnixStreamSocket {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !pathBytes.isEmpty else { throw .invalidRequest("socket path is empty") }
        guard pathBytes.count < capacity else {
            throw .invalidRequest(
                "socket path \(path) is \(pathBytes.count) bytes long; the limit is \(capacity - 1)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }

        #if canImport(Darwin)
        let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        #else
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #endif
        guard fd >= 0 else { throw .notRunning(path: path, reason: errnoText()) }
        let sock = UnixStreamSocket(fd: fd, path: path)
        sock.setTimeout(SO_SNDTIMEO, timeout)

        let length = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count + 1)
        while true {
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { posixConnect(fd, $0, length) }
            }
            if rc == 0 { break }
            let err = errno
            if err == EINTR { continue }
            if err == EAGAIN || err == EINPROGRESS {
                throw .timeout(path: path, seconds: timeout.seconds)
            }
            throw .notRunning(path: path, reason: errnoText(err))
        }
        return sock
    }

    /// Sets the receive timeout; nil waits forever.
    func setReceiveTimeout(_ timeout: Duration?) {
        setTimeout(SO_RCVTIMEO, timeout ?? .zero)
    }

    private func setTimeout(_ option: Int32, _ timeout: Duration) {
        let (seconds, attoseconds) = timeout.components
        var tv = timeval()
        tv.tv_sec = .init(seconds)
        tv.tv_usec = .init(attoseconds / 1_000_000_000_000)
        // A zero timeval would mean "wait forever"; keep a requested sub-microsecond timeout positive.
        if timeout > .zero && tv.tv_sec == 0 && tv.tv_usec == 0 { tv.tv_usec = 1 }
        _ = setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Writes every byte. `MSG_NOSIGNAL` turns a peer that went away into `EPIPE` instead of killing us with
    /// SIGPIPE.
    func writeAll(_ bytes: [UInt8], timeoutSeconds: Double) throws(ClientError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + offset, raw.count - offset, noSignalFlag)
            }
            if n >= 0 {
                offset += n
                continue
            }
            let err = errno
            if err == EINTR { continue }
            if err == EAGAIN || err == EWOULDBLOCK { throw .timeout(path: path, seconds: timeoutSeconds) }
            throw .connectionLost(path: path, reason: "write: \(errnoText(err))")
        }
    }

    /// Outcome of one read.
    enum ReadResult {
        case data([UInt8])
        case endOfStream
        /// The receive timeout elapsed without data.
        case wouldBlock
    }

    func read(maxBytes: Int = 65536) throws(ClientError) -> ReadResult {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { return .data(Array(buffer[0..<n])) }
            if n == 0 { return .endOfStream }
            let err = errno
            if err == EINTR { continue }
            if err == EAGAIN || err == EWOULDBLOCK { return .wouldBlock }
            throw .connectionLost(path: path, reason: "read: \(errnoText(err))")
        }
    }

    /// Closes the descriptor once; `close` is not retried on EINTR because Linux releases the descriptor even
    /// when it reports EINTR, and a retry could close a descriptor another thread just received.
    func close() {
        if fd >= 0 {
            _ = posixClose(fd)
            fd = -1
        }
    }
}

#if canImport(Darwin)
private let noSignalFlag: Int32 = 0
#else
private let noSignalFlag = Int32(MSG_NOSIGNAL)
#endif

// The libc functions share names with our methods; these aliases keep the calls unambiguous.
@inline(__always) private func posixConnect(_ fd: Int32, _ addr: UnsafePointer<sockaddr>, _ len: socklen_t) -> Int32 {
    connect(fd, addr, len)
}

@inline(__always) private func posixClose(_ fd: Int32) -> Int32 {
    close(fd)
}

/// The text of `errno` (or the given code), e.g. "No such file or directory".
func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

extension Duration {
    /// The duration in seconds, as a Double (for messages).
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
