import DatapathCore
import Foundation
import Glibc
import Logging
import Synchronization

/// A tiny HTTP responder for Prometheus scrapers on a TCP address (config `metrics-address`, off by default):
/// answers `GET /metrics` with the same text as `GET /v1/metrics` and nothing else. The API itself stays on its
/// Unix socket. Metrics name pods and policies and there is no authentication here, so a plain host keeps them on
/// loopback; a cluster that scrapes nodes configures the node's IP (or 0.0.0.0) explicitly, and the agent warns
/// that it serves them beyond the host.
///
/// One thread serves connections one at a time, each bounded by a short timeout: a scrape is one small request.
final class MetricsListener: Sendable {
    /// A parsed `host:port`.
    struct Address: Sendable, Equatable, CustomStringConvertible {
        var ip: IPAddress
        var port: UInt16

        var description: String { ip.family == .ipv6 ? "[\(ip)]:\(port)" : "\(ip):\(port)" }

        /// Whether only this host can connect: 127.0.0.0/8 or ::1.
        var isLoopback: Bool {
            ip.family == .ipv4 ? ip.bytes[0] == 127 : ip.bytes == [UInt8](repeating: 0, count: 15) + [1]
        }

        /// `127.0.0.1:9962`, `[::1]:9962`, `localhost:9962`, or a non-loopback address such as the node's IP,
        /// `0.0.0.0:9962` or `[::]:9962`; host names other than localhost are refused.
        init(parsing text: String, field: String = "metrics-address") throws {
            var host: Substring
            var portText: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                    throw AgentError.invalidField(field, "expected [IPv6]:port, got \"\(text)\"")
                }
                host = text[text.index(after: text.startIndex)..<close]
                portText = text[text.index(close, offsetBy: 2)...]
            } else {
                guard let colon = text.lastIndex(of: ":") else {
                    throw AgentError.invalidField(field, "expected host:port, got \"\(text)\"")
                }
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
            }
            guard let port = UInt16(portText), port > 0 else {
                throw AgentError.invalidField(field, "expected a port 1-65535 in \"\(text)\"")
            }
            let name = host == "localhost" ? "127.0.0.1" : String(host)
            guard let ip = IPAddress(name) else {
                throw AgentError.invalidField(field, "\"\(host)\" is not an IP address (or localhost)")
            }
            self.ip = ip
            self.port = port
        }
    }

    let address: Address
    private let render: @Sendable () -> String
    private let logger: Logger
    private let control = Mutex<(fd: Int32, stopping: Bool, started: Bool)>((-1, false, false))
    private let finished = DispatchSemaphore(value: 0)

    init(address: Address, logger: Logger, render: @escaping @Sendable () -> String) {
        self.address = address
        self.logger = logger
        self.render = render
    }

    /// Binds and starts serving; throws (naming the address) when the socket cannot be bound.
    func start() throws {
        let family = address.ip.family == .ipv4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw AgentError.unavailable("metrics listener: socket: \(String(cString: strerror(errno)))")
        }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withSockaddr { bind(fd, $0, $1) }
        guard bound == 0, listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw AgentError.unavailable("metrics listener: cannot listen on \(address): \(reason)")
        }
        control.withLock { $0 = (fd, false, true) }
        let thread = Thread { [self] in
            serve(fd)
            finished.signal()
        }
        thread.name = "metrics-listener"
        thread.start()
        if address.isLoopback {
            logger.info("metrics listening", metadata: ["address": "\(address)"])
        } else {
            logger.warning(
                "metrics listening beyond this host, without authentication: limit who reaches the port",
                metadata: ["address": "\(address)"])
        }
    }

    /// Stops serving and closes the socket; returns within about 100 ms. Idempotent.
    func stop() {
        let (started, wasStopping) = control.withLock { state in
            defer { state.stopping = true }
            return (state.started, state.stopping)
        }
        guard started, !wasStopping else { return }
        finished.wait()
    }

    private var isStopping: Bool { control.withLock { $0.stopping } }

    private func serve(_ listener: Int32) {
        defer { close(listener) }
        while !isStopping {
            var entry = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 100) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            answer(client)
            close(client)
        }
    }

    /// Reads the request head (bounded in size and time) and writes one response; the connection then closes.
    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        while head.count < 8192 {
            let n = recv(client, &buffer, buffer.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            head += buffer[0..<n]
            if head.count >= 4,
                head.indices.dropFirst(3).contains(where: { i in
                    head[i - 3] == 13 && head[i - 2] == 10 && head[i - 1] == 13 && head[i] == 10
                })
            {
                break
            }
        }
        let requestLine = String(decoding: head.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = requestLine.split(separator: " ")
        let response: String
        if parts.count < 2 {
            response = Self.response(400, "Bad Request", "malformed request\n")
        } else if parts[0] != "GET" && parts[0] != "HEAD" {
            response = Self.response(405, "Method Not Allowed", "only GET /metrics is served here\n", allow: true)
        } else if parts[1].split(separator: "?").first != "/metrics" {
            response = Self.response(404, "Not Found", "only /metrics is served here\n")
        } else {
            let body = render()
            response = Self.response(
                200, "OK", body, contentType: PrometheusText.contentType, headOnly: parts[0] == "HEAD")
        }
        var bytes = Array(response.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes {
                send(client, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }

    private static func response(
        _ status: Int, _ reason: String, _ body: String, contentType: String = "text/plain; charset=utf-8",
        allow: Bool = false, headOnly: Bool = false
    ) -> String {
        var text =
            "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n"
        if allow { text += "Allow: GET, HEAD\r\n" }
        return text + "\r\n" + (headOnly ? "" : body)
    }

    private func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        if address.ip.family == .ipv4 {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = address.port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: address.ip.bytes) }
            return Self.generic(&sa, body)
        }
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        sa.sin6_port = address.port.bigEndian
        withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: address.ip.bytes) }
        return Self.generic(&sa, body)
    }

    /// A family's socket address seen as the generic `sockaddr` with its length.
    private static func generic<Address, R>(
        _ address: inout Address, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R
    ) -> R {
        withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<Address>.size)) }
        }
    }
}
