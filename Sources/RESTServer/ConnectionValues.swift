import AgentAPI
import CMicroHTTPD

/// Collects one kind of a connection's key/value pairs (e.g. query arguments) into a dictionary.
/// The first occurrence of a repeated key wins.
func connectionValues(_ connection: OpaquePointer, kind: MHD_ValueKind) -> [String: String] {
    final class Collector {
        var values: [String: String] = [:]
    }
    let collector = Collector()
    withExtendedLifetime(collector) {
        _ = MHD_get_connection_values(
            connection, kind,
            { cls, _, key, value in
                guard let cls, let key else { return .YES }
                let collector = Unmanaged<Collector>.fromOpaque(cls).takeUnretainedValue()
                let name = String(cString: key)
                // A query argument without "=" ("?all") has no value.
                if collector.values[name] == nil { collector.values[name] = value.map { String(cString: $0) } ?? "" }
                return .YES
            }, Unmanaged.passUnretained(collector).toOpaque())
    }
    return collector.values
}

/// MHD's connection while the access handler runs: what a request's handler and log line may look up on demand.
struct LiveConnection: @unchecked Sendable {
    let connection: OpaquePointer

    init(_ connection: OpaquePointer) { self.connection = connection }

    /// MHD compares header names without regard to case.
    func header(_ name: String) -> String? {
        MHD_lookup_connection_value(connection, .HEADER_KIND, name).map { String(cString: $0) }
    }

    /// The request's Content-Length, when present. MHD itself rejects malformed values before calling the handler.
    var contentLength: Int? { header("Content-Length").flatMap { Int($0) } }

    var peer: PeerCredentials? { PeerCredentials(socket: cmhd_connection_fd(connection)) }
}
