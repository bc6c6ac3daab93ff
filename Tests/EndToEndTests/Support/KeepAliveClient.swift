import AgentAPI
import Foundation
import Glibc

/// One HTTP answer read off a keep-alive connection.
struct RawResponse: Sendable, CustomStringConvertible {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    var json: JSON? { try? JSON.parse(body) }
    var description: String { "\(status) \(text.prefix(300))" }
}

/// A client error: the connection could not be made, broke, or the answer was not HTTP.
struct KeepAliveError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A plain HTTP/1.1 client on one persistent Unix-socket connection, written against the wire format rather than
/// any library, so load and malformed-input tests see exactly what the server does. Not thread-safe: one per thread.
/// When the server answers `Connection: close` (or closes), the next request opens a new connection and
/// `reconnects` counts it.
final class KeepAliveClient {
    let socketPath: String
    let timeout: TimeInterval
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []
    private(set) var reconnects = 0

    init(socketPath: String, timeout: TimeInterval = 30) throws {
        self.socketPath = socketPath
        self.timeout = timeout
        try connectSocket()
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        buffer = []
    }

    /// Sends one request and reads its answer. `rawBody` goes out byte for byte (any content, valid or not).
    func request(
        _ method: String, _ target: String, body: JSON? = nil, rawBody: [UInt8]? = nil,
        headers: [String: String] = [:]
    ) throws -> RawResponse {
        if fd < 0 {
            try connectSocket()
            reconnects += 1
        }
        let payload = rawBody ?? body.map { Array($0.serialized().utf8) }
        var head = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let payload {
            if headers["Content-Type"] == nil { head += "Content-Type: application/json\r\n" }
            head += "Content-Length: \(payload.count)\r\n"
        }
        head += "\r\n"
        do {
            do {
                try writeAll(Array(head.utf8) + (payload ?? []))
            } catch {
                // A server may answer and close before taking the whole body (a 413 on Content-Length alone):
                // what it said is still there to read.
                guard let response = try? readResponse(method: method) else { throw error }
                close()
                return response
            }
            let response = try readResponse(method: method)
            if response.headers["connection"]?.lowercased() == "close" { close() }
            return response
        } catch {
            close()
            throw error
        }
    }

    /// Convenience for JSON APIs: `request` with a JSON body.
    func send(_ method: HTTPMethod, _ target: String, _ body: JSON? = nil) throws -> RawResponse {
        try request(method.rawValue, target, body: body)
    }

    // MARK: - Wire

    private func connectSocket() throws {
        let socketFD = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socketFD >= 0 else { throw KeepAliveError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socketFD, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(socketFD)
            throw KeepAliveError("connect \(socketPath): \(reason)")
        }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(socketFD, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socketFD, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        fd = socketFD
        buffer = []
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw KeepAliveError("send: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n > 0 {
                buffer += chunk[0..<n]
                return true
            }
            if n == 0 { return false }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw KeepAliveError("no answer within \(timeout) s") }
            throw KeepAliveError("recv: \(String(cString: strerror(errno)))")
        }
    }

    private func take(_ count: Int) -> [UInt8] {
        let out = Array(buffer[0..<count])
        buffer.removeFirst(count)
        return out
    }

    private func readLine() throws -> String {
        while true {
            if let index = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                var line = take(index + 1).dropLast()
                if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard try fill() else { throw KeepAliveError("connection closed in the middle of a response head") }
        }
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw KeepAliveError("connection closed in the middle of a body") }
        }
        return take(count)
    }

    private func readResponse(method: String) throws -> RawResponse {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw KeepAliveError("not an HTTP status line: \(statusLine)")
        }
        var headers: [String: String] = [:]
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { throw KeepAliveError("bad header line: \(line)") }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                .trimmingCharacters(in: .whitespaces)
        }
        var body: [UInt8] = []
        if method == "HEAD" || status == 204 || status == 304 || (100..<200).contains(status) {
            return RawResponse(status: status, headers: headers, body: [])
        }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            while true {
                let sizeLine = try readLine()
                guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else {
                    throw KeepAliveError("bad chunk size: \(sizeLine)")
                }
                if size == 0 {
                    while try !readLine().isEmpty {}
                    break
                }
                body += try readExactly(size)
                _ = try readLine()
            }
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            body = try readExactly(length)
        } else {
            while try fill() {}
            body = buffer
            buffer = []
            close()
        }
        return RawResponse(status: status, headers: headers, body: body)
    }
}
