/// An error the agent reports to its clients: a stable code, the HTTP status it maps to, a message for people and,
/// when one input field is at fault, that field's name.
public struct AgentError: Error, Sendable, Equatable {
    /// A stable, machine-readable error code. A struct rather than an enum so codes can be added without breaking
    /// clients that switch over them.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String

        public init(_ rawValue: String) { self.rawValue = rawValue }

        public var description: String { rawValue }

        /// The request body is not JSON (400).
        public static let invalidJSON = Code("invalid-json")
        /// A field or parameter has a bad value, or is missing or unknown (400).
        public static let invalidField = Code("invalid-field")
        /// The named resource or path does not exist (404).
        public static let notFound = Code("not-found")
        /// The path exists but not for this method (405).
        public static let methodNotAllowed = Code("method-not-allowed")
        /// The request contradicts existing state, e.g. an IP owned by another endpoint (409).
        public static let conflict = Code("conflict")
        /// The request body is larger than the server accepts (413).
        public static let payloadTooLarge = Code("payload-too-large")
        /// Valid, but not implemented by this agent or kernel (501).
        public static let unsupported = Code("unsupported")
        /// A table or allocator is full (507).
        public static let capacity = Code("capacity-exceeded")
        /// The agent cannot serve this now, e.g. still restoring state (503).
        public static let unavailable = Code("unavailable")
        /// A bug or unexpected failure inside the agent (500).
        public static let `internal` = Code("internal")
        /// The kernel refused a datapath operation (500).
        public static let datapath = Code("datapath-error")
    }

    public var code: Code
    public var message: String
    /// The HTTP status this error renders as.
    public var status: Int
    /// The input field at fault, in dotted form ("addressing.ipv4"), when there is one.
    public var field: String?
    /// The system's error number when a kernel call failed, for callers that decide by it (not rendered).
    public var errno: Int32?

    public init(code: Code, status: Int, message: String, field: String? = nil, errno: Int32? = nil) {
        self.code = code
        self.status = status
        self.message = message
        self.field = field
        self.errno = errno
    }

    /// `{"error": {"code": ..., "message": ..., "field": ...}}`, `field` only when set.
    public var json: JSON {
        var error: [String: JSON] = ["code": .string(code.rawValue), "message": .string(message)]
        if let field { error["field"] = .string(field) }
        return ["error": .object(error)]
    }
}

extension AgentError: CustomStringConvertible {
    public var description: String { message }
}

extension AgentError {
    /// 400: the body is not valid JSON; `message` says what and where.
    public static func invalidJSON(_ message: String) -> AgentError {
        AgentError(code: .invalidJSON, status: 400, message: message)
    }

    /// 400 naming the field: `.invalidField("addressing.ipv4", "expected an IPv4 address, got \"x\"")` has the
    /// message `addressing.ipv4: expected an IPv4 address, got "x"`.
    public static func invalidField(_ field: String, _ what: String) -> AgentError {
        AgentError(code: .invalidField, status: 400, message: "\(field): \(what)", field: field)
    }

    /// 404.
    public static func notFound(_ message: String) -> AgentError {
        AgentError(code: .notFound, status: 404, message: message)
    }

    /// 405, listing the methods the path does accept.
    public static func methodNotAllowed(_ method: String, path: String, allowed: [String]) -> AgentError {
        let list = allowed.isEmpty ? "none" : allowed.joined(separator: ", ")
        return AgentError(
            code: .methodNotAllowed, status: 405,
            message: "method \(method) is not allowed on \(path); allowed: \(list)")
    }

    /// 409, optionally naming the field whose value conflicts.
    public static func conflict(_ message: String, field: String? = nil) -> AgentError {
        AgentError(code: .conflict, status: 409, message: message, field: field)
    }

    /// 413.
    public static func payloadTooLarge(limit: Int) -> AgentError {
        AgentError(
            code: .payloadTooLarge, status: 413, message: "request body exceeds the limit of \(limit) bytes")
    }

    /// 500. The message goes to the client: keep internals out of it and log the details instead.
    public static func `internal`(_ message: String) -> AgentError {
        AgentError(code: .internal, status: 500, message: message)
    }

    /// 501.
    public static func unsupported(_ message: String) -> AgentError {
        AgentError(code: .unsupported, status: 501, message: message)
    }

    /// 507: a map, table or allocator is full.
    public static func capacity(_ message: String) -> AgentError {
        AgentError(code: .capacity, status: 507, message: message)
    }

    /// 503.
    public static func unavailable(_ message: String) -> AgentError {
        AgentError(code: .unavailable, status: 503, message: message)
    }

    /// 500: a kernel operation failed (bpf syscall, netlink, ...).
    public static func datapath(_ message: String) -> AgentError {
        AgentError(code: .datapath, status: 500, message: message)
    }

    /// A kernel call failed with `errno`. A full map (E2BIG from a hash or array update, ENOSPC from an LPM trie)
    /// is a 507 like any other full table; anything else is a 500. The errno stays in the error either way.
    public static func kernel(_ message: String, errno code: Int32) -> AgentError {
        // Linux's E2BIG and ENOSPC (asm-generic/errno-base.h): AgentAPI imports no C library for two numbers.
        let full = code == 7 || code == 28
        return AgentError(
            code: full ? .capacity : .datapath, status: full ? 507 : 500, message: message, errno: code)
    }
}
