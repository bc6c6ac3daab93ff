#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Why a transfer failed, sorted by what a caller decides on (try another server, report a timeout, ...), with
/// libcurl's own words and the system's errno when there was one.
public struct TransferError: Error, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// No connection was made (refused, no such socket, unresolvable host): nothing was sent.
        case couldNotConnect
        /// The connect or total timeout passed.
        case timedOut
        /// Reading or writing an established connection failed.
        case connectionLost
        /// The TLS handshake or a certificate failed.
        case tls
        /// Anything else, e.g. bytes that are not HTTP.
        case failed
    }

    public var kind: Kind
    /// libcurl's message.
    public var detail: String
    /// The system's errno of the failed socket call; 0 when there was none.
    public var osErrno: Int32
    /// Whether any of the request went out. When not, the server cannot have acted on it, so even a write may
    /// be sent to another server (a connect timeout and a response timeout are both `timedOut`; this tells them
    /// apart).
    public var requestSent: Bool

    public init(kind: Kind, detail: String, osErrno: Int32 = 0, requestSent: Bool = false) {
        self.kind = kind
        self.detail = detail
        self.osErrno = osErrno
        self.requestSent = requestSent
    }

    /// The system's text for `osErrno` when there is one ("Connection refused"), else libcurl's message.
    public var reason: String {
        osErrno != 0 ? String(cString: strerror(osErrno)) : detail
    }
}
