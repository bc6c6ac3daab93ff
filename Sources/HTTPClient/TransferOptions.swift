/// How a `CurlTransfer` connects: over a Unix socket or TCP, with or without TLS, and its time bounds.
public struct TransferOptions: Sendable, Equatable {
    /// Connect to this Unix socket instead of the URL's host and port.
    public var unixSocketPath: String?
    /// Client certificate, key and the CA that signs the server's certificate; nil for plain HTTP (or HTTPS with
    /// the system's CAs and no client certificate).
    public var tls: TLSFiles?
    /// Bound on connecting (TCP and TLS handshake).
    public var connectTimeout: Duration
    /// Bound on the whole transfer; nil for a stream that may last forever.
    public var totalTimeout: Duration?
    public var userAgent: String

    public init(
        unixSocketPath: String? = nil, tls: TLSFiles? = nil, connectTimeout: Duration, totalTimeout: Duration? = nil,
        userAgent: String
    ) {
        self.unixSocketPath = unixSocketPath
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
        self.userAgent = userAgent
    }
}

/// PEM files for TLS: the CA to trust (nil: the system's), and a client certificate with its key for servers that
/// ask for one (mutual TLS).
public struct TLSFiles: Sendable, Equatable {
    /// The CA certificate(s) the server's certificate must chain to.
    public var caFile: String?
    /// This client's certificate, presented to the server.
    public var certFile: String?
    /// The private key of `certFile`.
    public var keyFile: String?

    public init(caFile: String?, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }
}
