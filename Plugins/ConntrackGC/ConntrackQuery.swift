import DatapathCore

/// The filters of `GET /v1/ct` and `DELETE /v1/ct`, validated from the query string. Every parameter a route does
/// not know is rejected: a misspelt filter on DELETE must not flush the whole table.
struct ConntrackQuery {
    var endpoint: UInt32?
    /// Matches either end of the tuple.
    var address: IPAddress?
    /// Matches either port.
    var port: UInt16?
    var proto: UInt8?

    init(_ request: APIRequest, allowed: Set<String>) throws {
        try KnownKeys.check(request.query.keys, known: allowed, kind: "parameter")
        if let id = try request.queryInt("endpoint", in: 0...Int64(UInt32.max)) { endpoint = UInt32(id) }
        if let text = request.query["ip"] {
            guard let parsed = IPAddress(text) else {
                throw AgentError.invalidField("ip", "expected an IPv4 or IPv6 address, got \"\(text)\"")
            }
            address = parsed
        }
        if let number = try request.queryInt("port", in: 0...65535) { port = UInt16(number) }
        if let text = request.query["protocol"] {
            guard let number = IPProtocol.number(of: text) else {
                throw AgentError.invalidField(
                    "protocol", "expected TCP, UDP, ICMP, ICMPv6, SCTP or a number 0-255, got \"\(text)\"")
            }
            proto = number
        }
    }

    var isEmpty: Bool { endpoint == nil && address == nil && port == nil && proto == nil }

    func matches(_ key: na_ct_key, _ value: na_ct_value) -> Bool {
        if let endpoint, value.ep_id != endpoint { return false }
        if let proto, key.proto != proto { return false }
        if let port, UInt16(bigEndian: key.sport) != port && UInt16(bigEndian: key.dport) != port { return false }
        if let address {
            guard key.family == address.family.rawValue else { return false }
            let bytes = address.keyBytes
            if tupleBytes(key.saddr) != bytes && tupleBytes(key.daddr) != bytes { return false }
        }
        return true
    }
}
