import DatapathCore
import Glibc

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
        var texts = L7Texts()
        guard let record = bytes.withUnsafeBytes({ FlowRecord($0, texts: &texts) }) else { return nil }
        self = record
    }

    /// `texts` gives back the strings of an earlier record where this one has the same bytes.
    init?(_ bytes: UnsafeRawBufferPointer, texts: inout L7Texts) {
        guard bytes.count >= MemoryLayout<na_flow_event>.size else { return nil }
        event = bytes.loadUnaligned(as: na_flow_event.self)
        guard event.kind == UInt16(NA_EVENT_L7_HTTP.rawValue) else { return }
        guard bytes.count >= MemoryLayout<na_l7_event>.size else { return nil }
        // Each part is read where it lies in the record: a copy of the whole struct would move 300 bytes a request.
        typealias Layout = L7EventLayout
        let ruleIndex = bytes.load(fromByteOffset: Layout.ruleIndex, as: UInt8.self)
        l7 = Flow.L7(
            method: texts.method.text(bytes, Layout.method, length: Layout.methodLength),
            url: texts.url.text(bytes, Layout.path, length: Layout.pathLength),
            host: texts.host.text(bytes, Layout.host, length: Layout.hostLength),
            ruleIndex: ruleIndex == 255 ? nil : ruleIndex)
    }
}

/// Where the parts of a `struct na_l7_event` are, in bytes from its start.
private enum L7EventLayout {
    static let methodLength = offset(\.method_len)
    static let pathLength = offset(\.path_len)
    static let hostLength = offset(\.host_len)
    static let ruleIndex = offset(\.rule_index)
    static let method = (offset(\.method), Int(NA_L7_EVENT_METHOD_MAX))
    static let path = (offset(\.path), Int(NA_L7_EVENT_PATH_MAX))
    static let host = (offset(\.host), Int(NA_L7_EVENT_HOST_MAX))

    private static func offset<T>(_ field: KeyPath<na_l7_event, T>) -> Int {
        MemoryLayout<na_l7_event>.offset(of: field)!
    }
}

/// The method, request-target and host of the last HTTP record decoded, given back while the next records carry the
/// same bytes: clients repeat them request after request, and comparing a few bytes costs less than making (and
/// later freeing) a string for each.
struct L7Texts {
    var method = Field()
    var url = Field()
    var host = Field()

    struct Field {
        private var last = ""

        /// The text of a record's character field (`field`: its offset and size) whose used length is the UInt16 at
        /// `length`.
        mutating func text(_ record: UnsafeRawBufferPointer, _ field: (offset: Int, size: Int), length: Int) -> String {
            let used = min(Int(record.loadUnaligned(fromByteOffset: length, as: UInt16.self)), field.size)
            let bytes = UnsafeRawBufferPointer(rebasing: record[field.offset..<field.offset + used])
            let same = last.utf8.withContiguousStorageIfAvailable { sameBytes(UnsafeRawBufferPointer($0), bytes) }
            if same != true { last = bytes.withMemoryRebound(to: UInt8.self) { String(decoding: $0, as: UTF8.self) } }
            return last
        }
    }
}

private func sameBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    guard let x = a.baseAddress, let y = b.baseAddress else { return true }
    return memcmp(x, y, a.count) == 0
}
