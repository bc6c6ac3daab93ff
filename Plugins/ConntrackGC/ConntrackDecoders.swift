import DatapathCore

/// JSON views of the plugin's maps for `GET /v1/map/{name}`: na_ct entries read as in `/v1/ct`.
enum ConntrackDecoders {
    static func register(on datapath: Datapath) {
        datapath.registerDecoder(
            prefix: "na_ct",
            MapDecoder { key, value, _ in
                guard let entry = ConntrackEntry(keyBytes: key, valueBytes: value) else { return raw(key, value) }
                return (.object(entry.keyJSON), .object(entry.valueJSON(now: MonotonicClock.seconds())))
            })
        // Registered too so the longer prefix wins: na_ct's decoder must never see this map's entries.
        datapath.registerDecoder(
            prefix: "na_ct_created",
            MapDecoder { key, value, map in
                guard key.count == 4 else { return raw(key, value) }
                return (
                    ["index": .int(Int64(valueFrom(key, at: 0) as UInt32))],
                    ["created": .int(Int64(clamping: CreationCounter.sum(value, slots: map.valueCount)))]
                )
            })
    }

    private static func raw(_ key: [UInt8], _ value: [UInt8]) -> (key: JSON, value: JSON) {
        (["key-hex": .string(Hex.encode(key))], ["value-hex": .string(Hex.encode(value))])
    }
}
