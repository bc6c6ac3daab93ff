import DatapathCore

/// `GET /v1/nat` (the mappings, paged) and `DELETE /v1/nat` (flush).
struct NATRoutes {
    let plugin: NATPlugin

    var routes: [Route] {
        [
            .get("/v1/nat") { request in try list(request) },
            .delete("/v1/nat") { _ in try flush() },
        ]
    }

    /// One page of mappings in a stable order (by original tuple), starting after `cursor`: the hex key of the
    /// last mapping of the previous page, which stays a valid position even when that mapping is gone since.
    func list(_ request: APIRequest) throws -> APIResponse {
        let limit = Int(try request.queryInt("limit", in: 1...10_000) ?? 1000)
        var after: [UInt8]? = nil
        if let text = request.query["cursor"] {
            guard let bytes = hexDecode(text), bytes.count == MemoryLayout<na_ct_key>.size else {
                throw AgentError.invalidField(
                    "cursor", "expected \(MemoryLayout<na_ct_key>.size * 2) hex digits from next-cursor")
            }
            after = bytes
        }
        let mappings = try NATTable.read(plugin.natMap()).mappings()
        let now = MonotonicClock.seconds()
        let start =
            after.map { cursor in
                mappings.firstIndex { cursor.lexicographicallyPrecedes($0.keyBytes) } ?? mappings.endIndex
            } ?? 0
        let page = mappings[start...].prefix(limit)
        let more = start + page.count < mappings.count
        return .json([
            "mappings": .array(page.map { $0.json(now: now) }),
            "total": .int(Int64(mappings.count)),
            "next-cursor": more ? .string(hexEncode(page.last!.keyBytes)) : .null,
        ])
    }

    func flush() throws -> APIResponse {
        let deleted = try plugin.flush()
        return .json(["deleted-entries": .int(Int64(deleted))])
    }
}

func hexEncode(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
}

func hexDecode(_ text: String) -> [UInt8]? {
    let chars = Array(text.utf8)
    guard chars.count % 2 == 0 else { return nil }
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }
    var out: [UInt8] = []
    for index in stride(from: 0, to: chars.count, by: 2) {
        guard let high = nibble(chars[index]), let low = nibble(chars[index + 1]) else { return nil }
        out.append(high << 4 | low)
    }
    return out
}
