import DatapathCore

extension Flow {
    /// An HTTP request the kernel decided (`struct na_l7_event`), shown as Hubble shows L7 flows: `l7.type`
    /// REQUEST and `l7.http` with the method, the request-target and the Host header, each as far as the kernel
    /// copied it (`NA_L7_EVENT_*_MAX` bytes).
    public struct L7: Hashable, Sendable {
        public var method: String
        public var url: String
        public var host: String
        /// The index of the rule that allowed it in its port's ruleset; nil when none did (refused, or the peer is
        /// unrestricted on the port).
        public var ruleIndex: UInt8?

        public var json: JSON {
            var http: [String: JSON] = ["method": .string(method), "url": .string(url)]
            if !host.isEmpty { http["host"] = .string(host) }
            var object: [String: JSON] = ["type": .string("REQUEST"), "http": .object(http)]
            if let ruleIndex { object["rule-index"] = .int(Int64(ruleIndex)) }
            return .object(object)
        }
    }
}

/// One record of the `na_events` ring buffer: its flow header, and the HTTP part when `flow.kind` says there is one.
struct FlowRecord {
    var event: na_flow_event
    var l7: Flow.L7?

    /// nil for a record too short for what its kind announces (an ABI mismatch).
    init?(_ bytes: [UInt8]) {
        guard bytes.count >= MemoryLayout<na_flow_event>.size else { return nil }
        event = valueFrom(bytes, at: 0)
        guard event.kind == UInt16(NA_EVENT_L7_HTTP.rawValue) else { return }
        guard bytes.count >= MemoryLayout<na_l7_event>.size else { return nil }
        let http: na_l7_event = valueFrom(bytes, at: 0)
        l7 = Flow.L7(
            method: Self.text(tupleBytes(http.method), count: http.method_len),
            url: Self.text(tupleBytes(http.path), count: http.path_len),
            host: Self.text(tupleBytes(http.host), count: http.host_len),
            ruleIndex: http.rule_index == 255 ? nil : http.rule_index)
    }

    private static func text(_ bytes: [UInt8], count: UInt16) -> String {
        String(decoding: bytes.prefix(Int(count)), as: UTF8.self)
    }
}
