import CMicroHTTPD

/// Collects one kind of a connection's key/value pairs (headers, query arguments) into a dictionary.
/// The first occurrence of a repeated key wins. Header names are lower-cased.
func connectionValues(_ connection: OpaquePointer, kind: MHD_ValueKind, lowercaseKeys: Bool) -> [String: String] {
    final class Collector {
        var values: [String: String] = [:]
        let lowercaseKeys: Bool
        init(lowercaseKeys: Bool) { self.lowercaseKeys = lowercaseKeys }
    }
    let collector = Collector(lowercaseKeys: lowercaseKeys)
    withExtendedLifetime(collector) {
        _ = MHD_get_connection_values(
            connection, kind,
            { cls, _, key, value in
                guard let cls, let key else { return .YES }
                let collector = Unmanaged<Collector>.fromOpaque(cls).takeUnretainedValue()
                var name = String(cString: key)
                if collector.lowercaseKeys { name = name.lowercased() }
                // A query argument without "=" ("?all") has no value.
                if collector.values[name] == nil { collector.values[name] = value.map { String(cString: $0) } ?? "" }
                return .YES
            }, Unmanaged.passUnretained(collector).toOpaque())
    }
    return collector.values
}

/// The request's Content-Length, when present. MHD itself rejects malformed values before calling the handler.
func contentLength(_ connection: OpaquePointer) -> Int? {
    guard let raw = MHD_lookup_connection_value(connection, .HEADER_KIND, "Content-Length") else { return nil }
    return Int(String(cString: raw))
}
