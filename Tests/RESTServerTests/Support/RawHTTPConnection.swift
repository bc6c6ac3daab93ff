import Foundation

/// A parsed HTTP/1.1 response.
struct RawResponse {
    let status: Int
    /// Lower-cased names.
    let headers: [String: String]
    let body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
}

struct RawHTTPError: Error, CustomStringConvertible {
    let description: String
}

/// A plain blocking Unix-socket client speaking just enough HTTP/1.1 for tests where curl is awkward: several
/// requests on one connection, sending headers without a body, reading a stream piece by piece, hanging up.
final class RawHTTPConnection {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var closed = false

    init(path: String, receiveTimeout seconds: Int = 10) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawHTTPError(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let message = String(cString: strerror(errno))
            Glibc.close(fd)
            throw RawHTTPError(description: "connect \(path): \(message)")
        }
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close() }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard count > 0 else { throw RawHTTPError(description: "send: \(String(cString: strerror(errno)))") }
            offset += count
        }
    }

    /// One request with `Content-Length` when there is a body.
    func request(_ method: String, _ target: String, body: String? = nil, headers: [String] = []) throws
        -> RawResponse
    {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\n"
        for header in headers { head += header + "\r\n" }
        if let body { head += "Content-Length: \(body.utf8.count)\r\n" }
        try send(head + "\r\n" + (body ?? ""))
        return try readResponse(bodyless: method == "HEAD")
    }

    /// Status and headers of the next response, leaving its body unread.
    func readHead() throws -> (status: Int, headers: [String: String]) {
        let end = try readUntil([13, 10, 13, 10])
        let head = String(decoding: buffer[..<end], as: UTF8.self)
        buffer.removeFirst(end + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw RawHTTPError(description: "bad status line in \(head)")
        }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        return (status, headers)
    }

    /// A whole response: head and a body framed by Content-Length or chunked encoding (none for HEAD).
    func readResponse(bodyless: Bool = false) throws -> RawResponse {
        let (status, headers) = try readHead()
        if bodyless { return RawResponse(status: status, headers: headers, body: []) }
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            var body: [UInt8] = []
            while let chunk = try readChunk() { body += chunk }
            return RawResponse(status: status, headers: headers, body: body)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        try fill(length)
        let body = Array(buffer[..<length])
        buffer.removeFirst(length)
        return RawResponse(status: status, headers: headers, body: body)
    }

    /// The next chunk of a chunked body, nil after the last one.
    func readChunk() throws -> [UInt8]? {
        let end = try readUntil([13, 10])
        let sizeText = String(decoding: buffer[..<end], as: UTF8.self).split(separator: ";").first ?? ""
        guard let size = Int(sizeText, radix: 16) else { throw RawHTTPError(description: "bad chunk size \(sizeText)") }
        buffer.removeFirst(end + 2)
        if size == 0 {
            _ = try readUntil([13, 10])  // no trailers expected
            buffer.removeFirst(2)
            return nil
        }
        try fill(size + 2)
        let chunk = Array(buffer[..<size])
        buffer.removeFirst(size + 2)
        return chunk
    }

    /// Whether the server has closed the connection (reads end-of-file within `seconds`).
    func serverClosed(within seconds: Double) -> Bool {
        var pollfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pollfd, 1, Int32(seconds * 1000)) == 1 else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK)) == 0
    }

    private func readUntil(_ marker: [UInt8]) throws -> Int {
        while true {
            if buffer.count >= marker.count {
                for start in 0...(buffer.count - marker.count)
                where buffer[start..<start + marker.count].elementsEqual(marker) {
                    return start
                }
            }
            try readMore()
        }
    }

    private func fill(_ count: Int) throws {
        while buffer.count < count { try readMore() }
    }

    private func readMore() throws {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let count = recv(fd, &chunk, chunk.count, 0)
        if count == 0 { throw RawHTTPError(description: "connection closed by the server") }
        if count < 0 { throw RawHTTPError(description: "recv: \(String(cString: strerror(errno)))") }
        buffer += chunk[..<count]
    }
}
