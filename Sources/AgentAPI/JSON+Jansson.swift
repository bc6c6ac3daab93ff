import CJansson

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

extension JSON {
    /// Parses one JSON document of any type with jansson.
    ///
    /// Duplicate object keys, invalid UTF-8, `\u0000` in strings, trailing data and nesting deeper than jansson's
    /// limit (2048) are all rejected with a 400 `invalid-json` error whose message says what and where, e.g.
    /// `invalid JSON at line 1, column 3 (byte 3): invalid token near 'bad'`.
    public static func parse(_ bytes: [UInt8]) throws(AgentError) -> JSON {
        var error = json_error_t()
        let flags = Int(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)
        let root = bytes.withUnsafeBufferPointer { buffer in
            withChars(buffer) { json_loadb($0, $1, flags, &error) }
        }
        guard let root else { throw AgentError.invalidJSON(describe(error)) }
        defer { json_decref(root) }
        return JSON(releasing: root)
    }

    /// Parses one JSON document like ``parse(_:)-([UInt8])``, except that an array's elements are parsed one at a
    /// time and handed to `body` in order, each gone before the next is read: a large array (hundreds of policy
    /// documents in one request) then never exists whole as a tree, only as its text and one element. Returns nil
    /// for an array, and any other document whole.
    ///
    /// Errors are those of ``parse(_:)-([UInt8])`` for the same text, and text that is not valid JSON fails with
    /// them even when `body` threw first for an earlier element; `body` may have seen elements ahead of the fault.
    public static func parse(_ bytes: [UInt8], elements body: (JSON) throws(AgentError) -> Void) throws(AgentError)
        -> JSON?
    {
        var position = skippingSpace(bytes, from: 0)
        guard position < bytes.count, bytes[position] == UInt8(ascii: "[") else { return try parse(bytes) }
        var handed = 0
        var bodyFailed = false
        do throws(AgentError) {
            position = skippingSpace(bytes, from: position + 1)
            if position < bytes.count && bytes[position] == UInt8(ascii: "]") {
                position = skippingSpace(bytes, from: position + 1)
            } else {
                while true {
                    var error = json_error_t()
                    // Stops after one value and reports how far it read; the rest of the array is read here.
                    let flags = Int(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK)
                    let element = bytes.withUnsafeBufferPointer { buffer in
                        withChars(UnsafeBufferPointer(rebasing: buffer[position...])) {
                            json_loadb($0, $1, flags, &error)
                        }
                    }
                    guard let element else { throw AgentError.invalidJSON("element \(handed)") }
                    position += Int(error.position)
                    let value = JSON(releasing: element)
                    json_decref(element)
                    // As deep as the limit allows on its own, one level too deep inside the array; only an element
                    // of that many bytes can be.
                    if Int(error.position) >= 2 * maxDepth && value.nestingLevels >= maxDepth {
                        throw AgentError.invalidJSON("depth")
                    }
                    handed += 1
                    bodyFailed = true
                    try body(value)
                    bodyFailed = false
                    position = skippingSpace(bytes, from: position)
                    guard position < bytes.count else { throw AgentError.invalidJSON("end of the array") }
                    let separator = bytes[position]
                    position = skippingSpace(bytes, from: position + 1)
                    if separator == UInt8(ascii: "]") { break }
                    guard separator == UInt8(ascii: ",") else { throw AgentError.invalidJSON("separator") }
                }
            }
            guard position == bytes.count else { throw AgentError.invalidJSON("trailing data") }
            return nil
        } catch {
            // Text that is not JSON fails as the whole parse fails, wherever the fault is.
            let whole = try parse(bytes)
            if bodyFailed { throw error }
            // JSON this reading could not follow: the rest from the whole tree.
            guard case .array(let elements) = whole else { return whole }
            for element in elements.dropFirst(handed) { try body(element) }
            return nil
        }
    }

    /// jansson's limit on nested arrays and objects (`JSON_PARSER_MAX_DEPTH`).
    static let maxDepth = 2048

    /// Levels of arrays and objects in the value, 0 for a scalar.
    private var nestingLevels: Int {
        switch self {
        case .array(let elements): 1 + (elements.lazy.map(\.nestingLevels).max() ?? 0)
        case .object(let members): 1 + (members.values.lazy.map(\.nestingLevels).max() ?? 0)
        default: 0
        }
    }

    /// JSON's white space: space, tab, line feed, carriage return.
    public static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    /// The position of the first byte from `start` on that is not JSON white space.
    private static func skippingSpace(_ bytes: [UInt8], from start: Int) -> Int {
        var position = start
        while position < bytes.count, isSpace(bytes[position]) { position += 1 }
        return position
    }

    /// Parses UTF-8 text; see ``parse(_:)-([UInt8])``.
    public static func parse(_ text: String) throws(AgentError) -> JSON {
        try parse(Array(text.utf8))
    }

    /// Serializes through jansson with keys sorted: compact, or indented by two spaces when `pretty`.
    ///
    /// Doubles are written with the fewest digits that read back to the same value; non-finite doubles, which
    /// JSON cannot express, are written as `null`.
    public func serialized(pretty: Bool = false) -> String {
        guard let value = makeJansson() else { return "null" }
        defer { json_decref(value) }
        var flags = JSON_ENCODE_ANY | JSON_SORT_KEYS
        flags |= pretty ? (2 & JSON_MAX_INDENT) : JSON_COMPACT
        // JSON_REAL_PRECISION(n) is a function-like macro and does not import: it is ((n & 0x1F) << 11).
        flags |= (Int32(maxSignificantDigits) & 0x1F) << 11
        guard let text = json_dumps(value, Int(flags)) else { return "null" }
        defer { free(text) }
        return String(cString: text)
    }

    /// ``serialized(pretty:)`` as UTF-8 bytes, for response bodies.
    public func serializedBytes(pretty: Bool = false) -> [UInt8] {
        Array(serialized(pretty: pretty).utf8)
    }

    private static func describe(_ error: json_error_t) -> String {
        var error = error
        let text = withUnsafeBytes(of: &error.text) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        var message = "invalid JSON at line \(error.line), column \(error.column) (byte \(error.position)): \(text)"
        if text.hasPrefix("maximum parsing depth reached") {
            message += " (documents may nest at most \(maxDepth) levels)"
        }
        return message
    }

    /// Converts a jansson value that nothing else refers to, releasing each member and element of it as soon as it
    /// is converted: a parsed tree and its conversion are each several times the size of the text, and a large
    /// request or state file would otherwise hold both at once. Recursion depth is bounded by the parser's depth
    /// limit.
    private init(releasing value: UnsafeMutablePointer<json_t>) {
        switch value.pointee.type {
        case JSON_OBJECT:
            var members: [String: JSON] = [:]
            members.reserveCapacity(json_object_size(value))
            var iter = json_object_iter(value)
            while let current = iter {
                let key = String(
                    decoding: UnsafeRawBufferPointer(
                        start: json_object_iter_key(current), count: json_object_iter_key_len(current)),
                    as: UTF8.self)
                if let member = json_object_iter_value(current) {
                    members[key] = JSON(releasing: member)
                    // Replacing a member's value leaves the iteration as it was; null is a static value.
                    json_object_iter_set_new(value, current, json_null())
                }
                iter = json_object_iter_next(value, current)
            }
            self = .object(members)
        case JSON_ARRAY:
            let count = json_array_size(value)
            var elements: [JSON] = []
            elements.reserveCapacity(count)
            for index in 0..<count {
                if let element = json_array_get(value, index) {
                    elements.append(JSON(releasing: element))
                    json_array_set_new(value, index, json_null())
                }
            }
            self = .array(elements)
        case JSON_STRING:
            self = .string(
                String(
                    decoding: UnsafeRawBufferPointer(start: json_string_value(value), count: json_string_length(value)),
                    as: UTF8.self))
        case JSON_INTEGER:
            self = .int(Int64(json_integer_value(value)))
        case JSON_REAL:
            self = .double(json_real_value(value))
        case JSON_TRUE:
            self = .bool(true)
        case JSON_FALSE:
            self = .bool(false)
        default:
            self = .null
        }
    }

    /// A new jansson reference (caller owns it), or nil if jansson could not allocate.
    private func makeJansson() -> UnsafeMutablePointer<json_t>? {
        switch self {
        case .null:
            return json_null()
        case .bool(let b):
            return b ? json_true() : json_false()
        case .int(let i):
            return json_integer(json_int_t(i))
        case .double(let d):
            return d.isFinite ? json_real(d) : json_null()
        case .string(let s):
            var s = s
            return s.withUTF8 { utf8 in JSON.withChars(utf8) { json_stringn($0, $1) } }
        case .array(let elements):
            guard let array = json_array() else { return nil }
            for element in elements {
                json_array_append_new(array, element.makeJansson() ?? json_null())
            }
            return array
        case .object(let members):
            guard let object = json_object() else { return nil }
            for (key, member) in members {
                var key = key
                let child = member.makeJansson() ?? json_null()
                _ = key.withUTF8 { utf8 in JSON.withChars(utf8) { json_object_setn_new(object, $0, $1, child) } }
            }
            return object
        }
    }

    /// Calls `body` with the bytes as a C char pointer and count; an empty buffer (nil base address) still gets a
    /// valid pointer, which jansson requires even when told to read zero bytes.
    private static func withChars<R>(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (UnsafePointer<CChar>, Int) -> R)
        -> R
    {
        guard let base = bytes.baseAddress else {
            var empty: CChar = 0
            return withUnsafePointer(to: &empty) { body($0, 0) }
        }
        return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) { body($0, bytes.count) }
    }

    /// The most significant digits any double in this value needs to read back exactly (at least 1, at most 17).
    private var maxSignificantDigits: Int {
        switch self {
        case .double(let d): return d.isFinite ? JSON.significantDigits(d) : 1
        case .array(let elements): return elements.reduce(1) { max($0, $1.maxSignificantDigits) }
        case .object(let members): return members.values.reduce(1) { max($0, $1.maxSignificantDigits) }
        default: return 1
        }
    }

    /// Swift's `description` of a double is its shortest round-tripping form; count its significant digits.
    private static func significantDigits(_ d: Double) -> Int {
        let mantissa = d.description.prefix { $0 != "e" && $0 != "E" }
        let digits = mantissa.filter(\.isNumber).drop { $0 == "0" }
        let trimmed = digits.reversed().drop { $0 == "0" }
        return min(max(trimmed.count, 1), 17)
    }
}
