import DatapathCore
import Logging
import RESTServer

/// Prometheus scrapers' endpoint on a TCP address (config `metrics-address`, off by default): `GET /metrics` with
/// the same text as `GET /v1/metrics`, served by the agent's one HTTP server on a second listener; the API itself
/// stays on its Unix socket. Metrics name pods and policies and there is no authentication here, so a plain host
/// keeps them on loopback; a cluster that scrapes nodes configures the node's IP (or 0.0.0.0) explicitly, and the
/// agent warns that it serves them beyond the host.
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
    private let server: RESTServer
    private let logger: Logger

    init(address: Address, logger: Logger, render: @escaping @Sendable () -> String) {
        self.address = address
        self.logger = logger
        let route = Route.get("/metrics") { _ in .text(render(), contentType: PrometheusText.contentType) }
        // A scrape is one small request: two workers and a short idle timeout are plenty.
        server = RESTServer(
            endpoint: .tcp(address: address.ip.bytes, port: address.port), router: Router(routes: [route]),
            options: RESTServer.Options(threads: 2, connectionTimeoutSeconds: 10), logger: logger)
    }

    /// Binds and starts serving; throws (naming the address) when the socket cannot be bound.
    func start() throws {
        do {
            try server.start()
        } catch {
            throw AgentError.unavailable("metrics listener: \(error.message)")
        }
        if !address.isLoopback {
            logger.warning(
                "metrics listening beyond this host, without authentication: limit who reaches the port",
                metadata: ["address": "\(address)"])
        }
    }

    /// Stops serving and closes the socket. Idempotent.
    func stop() {
        server.stop()
    }
}
