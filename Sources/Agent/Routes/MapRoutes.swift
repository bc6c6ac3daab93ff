import DatapathCore

/// `GET /v1/map` and `GET /v1/map/{name}`: every map the agent or a plugin owns, and its entries, paged.
struct MapRoutes {
    let datapath: Datapath

    var routes: [Route] {
        [
            .get("/v1/map") { _ in .json(["maps": .array(try datapath.allMaps.map(summary))]) },
            .get("/v1/map/{name}") { request in try dump(request) },
        ]
    }

    func summary(_ map: BPFMap) throws -> JSON {
        [
            "name": .string(map.name), "owner": .string(datapath.owner(ofMap: map.name)),
            "type": .string(map.info.typeName), "key-size": .int(Int64(map.info.keySize)),
            "value-size": .int(Int64(map.info.valueSize)), "max-entries": .int(Int64(map.info.maxEntries)),
            "entries": .int(Int64(try map.count())),
            "pinned": datapath.root.isEmpty ? .null : .string("\(datapath.root)/\(map.name)"),
        ]
    }

    /// One page of entries starting after `cursor` (the hex key last returned), never the whole map at once.
    func dump(_ request: APIRequest) throws -> APIResponse {
        let name = try request.pathParameter("name")
        let map = try datapath.map(name)
        let limit = Int(try request.queryInt("limit", in: 1...10_000) ?? 1000)
        var cursor: [UInt8]? = nil
        if let text = request.query["cursor"] {
            guard let bytes = Hex.decode(text), bytes.count == map.info.keySize else {
                throw AgentError.invalidField("cursor", "expected \(map.info.keySize * 2) hex digits from next-cursor")
            }
            cursor = bytes
        }
        guard map.info.type?.isIterable ?? true else {
            return .json(["name": .string(name), "entries": [], "next-cursor": .null])
        }
        let decoder = datapath.decoder(forMap: name)
        var entries: [JSON] = []
        var last: [UInt8]? = nil
        var more = false
        while let key = try map.nextKey(after: cursor) {
            cursor = key
            if entries.count == limit {
                more = true
                break
            }
            guard let value = try map.lookup(key: key) else { continue }  // deleted meanwhile
            if decoder?.omits?(value) == true { continue }
            if let decoder {
                let decoded = decoder.decode(key, value, map)
                entries.append(["key": decoded.key, "value": decoded.value])
            } else {
                entries.append(["key-hex": .string(Hex.encode(key)), "value-hex": .string(Hex.encode(value))])
            }
            last = key
        }
        return .json([
            "name": .string(name), "entries": .array(entries),
            "next-cursor": more ? .string(Hex.encode(last ?? [])) : .null,
        ])
    }
}
