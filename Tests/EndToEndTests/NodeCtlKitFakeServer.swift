import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A tiny HTTP server on a temporary Unix socket that answers with scripted bytes, for testing the client's
/// parsing: responses can be cut into pieces written separately (so the client sees split reads), can pause,
/// wait for the test, or stream until the client hangs up.
final class NodeCtlKitFakeServer: Sendable {
    /// A request as the server read it.
    struct Request: Sendable, Equatable {
        var method: String
        var target: String
        /// Header names lower-cased.
        var headers: [String: String]
        var body: [UInt8]
        var bodyText: String { String(decoding: body, as: UTF8.self) }
    }

    /// One step of a reply.
    enum Step: Sendable {
        /// Write these bytes (one write).
        case send([UInt8])
        /// Sleep.
        case pause(milliseconds: Int)
        /// Block until `signal` returns (it reports whether the test signalled in time); the result is recorded.
        case wait(@Sendable () -> Bool)
        /// Write `bytes` every `intervalMilliseconds` until the client closes the connection (or 10 s pass).
        case sendUntilClosed([UInt8], intervalMilliseconds: Int)
    }

    private struct State {
        var requests: [Request] = []
        var waitResults: [Bool] = []
        var peerClosedDuringStream = false
        var stopped = false
    }

    /// What the server thread shares with the tests; separate from the server object so the thread does not keep
    /// the server alive (its deinit stops the thread).
    private final class Shared: Sendable {
        let state = Mutex(State())
        let finished = DispatchSemaphore(value: 0)
    }

    let path: String
    private let listenFD: Int32
    private let shared = Shared()

    /// Starts listening; `reply` is called on the server thread for each request.
    init(reply: @escaping @Sendable (Request) -> [Step]) throws {
        path = Self.uniquePath()
        listenFD = try Self.listen(at: path)
        let fd = listenFD
        let shared = self.shared
        let thread = Thread {
            Self.serve(fd: fd, shared: shared, reply: reply)
            shared.finished.signal()
        }
        thread.start()
    }

    /// A server answering every request with `response` cut into `pieces` separate writes.
    convenience init(response: String, pieces: Int = 1) throws {
        let bytes = Array(response.utf8)
        try self.init { _ in Self.split(bytes, into: pieces).flatMap { [.send($0), .pause(milliseconds: 5)] } }
    }

    deinit {
        stop()
    }

    var requests: [Request] { shared.state.withLock { $0.requests } }
    var waitResults: [Bool] { shared.state.withLock { $0.waitResults } }
    var peerClosedDuringStream: Bool { shared.state.withLock { $0.peerClosedDuringStream } }

    /// Stops accepting, waits for the server thread, removes the socket file.
    func stop() {
        let first = shared.state.withLock { state -> Bool in
            defer { state.stopped = true }
            return !state.stopped
        }
        guard first else { return }
        shared.finished.wait()
        close(listenFD)
        unlink(path)
    }

    // MARK: Building responses

    /// "HTTP/1.1 <status> <reason>" with JSON body and Content-Length.
    static func jsonResponse(_ body: String, status: Int = 200, reason: String = "OK") -> String {
        "HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
            + body
    }

    /// One chunk of chunked transfer-encoding: hex size, CRLF, data, CRLF.
    static func chunk(_ data: String) -> String {
        String(data.utf8.count, radix: 16) + "\r\n" + data + "\r\n"
    }

    /// A chunked encoding of `chunks`, last chunk and empty trailer included.
    static func chunked(_ chunks: [String]) -> String {
        chunks.map(chunk).joined() + "0\r\n\r\n"
    }

    /// Cuts `bytes` into `count` nearly equal pieces.
    static func split(_ bytes: [UInt8], into count: Int) -> [[UInt8]] {
        guard count > 1, bytes.count > 1 else { return [bytes] }
        let size = max(1, (bytes.count + count - 1) / count)
        return stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) }
    }

    // MARK: Server loop

    private static let counter = Atomic<Int>(0)

    private static func uniquePath() -> String {
        let n = counter.wrappingAdd(1, ordering: .relaxed).oldValue
        return "/tmp/nodectl-test-\(getpid())-\(n)-\(UInt32.random(in: 0...UInt32.max)).sock"
    }

    private static func listen(at path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8) + [0])
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0, Glibc.listen(fd, 16) == 0 else {
            let err = errno
            close(fd)
            throw POSIXError(.init(rawValue: err) ?? .EIO)
        }
        return fd
    }

    private static func serve(fd: Int32, shared: Shared, reply: @Sendable (Request) -> [Step]) {
        while !shared.state.withLock({ $0.stopped }) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let conn = accept(fd, nil, nil)
            guard conn >= 0 else { continue }
            if let request = readRequest(conn) {
                shared.state.withLock { $0.requests.append(request) }
                for step in reply(request) where !perform(step, on: conn, shared: shared) {
                    break
                }
            }
            close(conn)
        }
    }

    /// Performs one step; false when the connection is gone.
    private static func perform(_ step: Step, on conn: Int32, shared: Shared) -> Bool {
        switch step {
        case .send(let bytes):
            return writeAll(conn, bytes)
        case .pause(let ms):
            usleep(UInt32(ms) * 1000)
            return true
        case .wait(let signal):
            let ok = signal()
            shared.state.withLock { $0.waitResults.append(ok) }
            return true
        case .sendUntilClosed(let bytes, let interval):
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                if !writeAll(conn, bytes) {
                    shared.state.withLock { $0.peerClosedDuringStream = true }
                    return false
                }
                usleep(UInt32(interval) * 1000)
            }
            return true
        }
    }

    private static func writeAll(_ conn: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes {
                send(conn, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }

    private static func readRequest(_ conn: Int32) -> Request? {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        let terminator: [UInt8] = Array("\r\n\r\n".utf8)
        var headEnd: Int?
        var contentLength = 0
        var request: Request?
        while true {
            if headEnd == nil, let range = buffer.firstRange(of: terminator) {
                headEnd = range.upperBound
                let lines = String(decoding: buffer[..<range.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
                let first = lines[0].split(separator: " ")
                var headers: [String: String] = [:]
                for line in lines.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                        .trimmingCharacters(in: .whitespaces)
                }
                contentLength = Int(headers["content-length"] ?? "0") ?? 0
                request = Request(
                    method: first.count > 0 ? String(first[0]) : "", target: first.count > 1 ? String(first[1]) : "",
                    headers: headers, body: [])
            }
            if let headEnd, buffer.count - headEnd >= contentLength {
                request?.body = Array(buffer[headEnd..<(headEnd + contentLength)])
                return request
            }
            let n = recv(conn, &chunk, chunk.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }
}
