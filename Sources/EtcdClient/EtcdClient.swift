import AgentAPI
import HTTPClient
import Logging
import Synchronization

/// A client of etcd's v3 API through its JSON gateway (grpc-gateway: `POST /v3/...` with JSON bodies), over
/// libcurl.
///
/// Each request goes to the endpoint that answered last, then to the others in turn: a member that refuses
/// connections (or answers "unavailable") never fails a request while another answers. The whole request,
/// failover included, is bounded by `requestTimeout`. Every failure is an `AgentError`; etcd out of reach is a
/// 503 whose message names etcd and every endpoint tried.
public final class EtcdClient: Sendable {
    /// Client URLs ("http://10.0.0.1:2379", "https://..."), in the order they are tried first.
    public let endpoints: [String]
    public let tls: TLSFiles?
    public let requestTimeout: Duration
    let logger: Logger
    /// The index of the endpoint that answered last.
    private let preferred = Mutex(0)
    private let counts = Mutex<[EtcdOperation: Int]>([:])

    /// A client of `endpoints`; `tls` gives the CA, client certificate and key for `https://` endpoints that
    /// require client certificates (`--client-cert-auth`). Nothing is contacted until the first request.
    public init(
        endpoints: [String], tls: TLSFiles? = nil, requestTimeout: Duration = .seconds(5),
        logger: Logger = Logger(label: "etcd")
    ) {
        self.endpoints = endpoints.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.tls = tls
        self.requestTimeout = requestTimeout
        self.logger = logger
    }

    /// Sends `body` to `path` ("/v3/kv/range") and returns etcd's answer, trying endpoints in turn.
    ///
    /// An endpoint is left for the next only when nothing was sent (no connection, a connect timeout, TLS
    /// refused) or etcd says it cannot serve (gRPC Unavailable, e.g. no leader): a write that may have been
    /// applied is never sent twice. A read (`Self.idempotent`) is also sent on when a member took it and did not
    /// answer (hung, or cut off behind a partition), each member getting its share of the time left. After such a
    /// silence the next request starts with the following member, so one hung member costs one timeout, not one
    /// for every request.
    func call(_ path: String, _ body: JSON) throws(AgentError) -> JSON {
        let kind = String(path.split(separator: "/").last ?? "")
        do {
            let answer = try attempt(path, body)
            count(EtcdOperation(kind: kind, outcome: "success"))
            return answer
        } catch {
            count(EtcdOperation(kind: kind, outcome: error.code == .unavailable ? "unavailable" : "error"))
            throw error
        }
    }

    /// Requests made since the start, by kind and outcome (for the agent's metrics).
    public var operations: [EtcdOperation: Int] { counts.withLock { $0 } }

    func count(_ operation: EtcdOperation) { counts.withLock { $0[operation, default: 0] += 1 } }

    private func attempt(_ path: String, _ body: JSON) throws(AgentError) -> JSON {
        guard !endpoints.isEmpty else { throw .unavailable("etcd: no endpoints configured") }
        let deadline = ContinuousClock.now + requestTimeout
        var failures: [String] = []
        for (attempt, endpoint) in endpointsInOrder().enumerated() {
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                failures.append("\(endpoint) (not tried: out of time)")
                continue
            }
            // Each endpoint may use its share of what is left to connect (and to answer a read), so one silent
            // member cannot use up the time of those after it.
            let connect = left / (endpoints.count - attempt)
            let retriable = Self.idempotent.contains(path) && attempt < endpoints.count - 1
            do {
                let response = try send(
                    path, body, to: endpoint, connectTimeout: connect, totalTimeout: retriable ? connect : left)
                if let error = EtcdGatewayError(response), error.isUnavailable {
                    failures.append("\(endpoint) (\(error.message))")
                    continue
                }
                prefer(endpoint)
                return try EtcdGatewayError.decode(response, path: path)
            } catch let error as TransferError where !error.requestSent {
                failures.append("\(endpoint) (\(describe(error)))")
            } catch let error as TransferError where error.kind == .timedOut && retriable {
                failures.append("\(endpoint) (no answer within \(connect.seconds)s)")
                preferNext(after: endpoint)
            } catch let error as TransferError where error.kind == .timedOut {
                preferNext(after: endpoint)
                throw .unavailable("etcd did not answer \(path) from \(endpoint) within \(requestTimeout.seconds)s")
            } catch let error as TransferError {
                throw .unavailable("etcd request \(path) to \(endpoint) failed: \(describe(error))")
            } catch let error as AgentError {
                throw error
            } catch {
                throw .internal("etcd request \(path): \(error)")
            }
        }
        let message = "etcd is unreachable: tried \(failures.joined(separator: ", "))"
        logger.warning("\(message)")
        throw .unavailable(message)
    }

    /// The endpoints, the one that answered last first.
    func endpointsInOrder() -> [String] {
        let first = preferred.withLock { $0 }
        return Array(endpoints[first...] + endpoints[..<first])
    }

    /// Requests that change nothing, which may be sent to another member after one took them and fell silent.
    static let idempotent: Set<String> = [
        "/v3/kv/range", "/v3/lease/keepalive", "/v3/lease/timetolive", "/v3/cluster/member/list",
        "/v3/maintenance/status",
    ]

    /// Makes the endpoint after `endpoint` the one to try first: `endpoint` took a request and fell silent.
    public func preferNext(after endpoint: String) {
        guard let index = endpoints.firstIndex(of: endpoint) else { return }
        preferred.withLock { if $0 == index { $0 = (index + 1) % endpoints.count } }
    }

    /// Remembers `endpoint` as the one to try first.
    func prefer(_ endpoint: String) {
        guard let index = endpoints.firstIndex(of: endpoint) else { return }
        preferred.withLock { $0 = index }
    }

    /// One POST of `body` to `endpoint` + `path`.
    func send(
        _ path: String, _ body: JSON, to endpoint: String, connectTimeout: Duration, totalTimeout: Duration?
    ) throws -> HTTPResponse {
        let request = HTTPRequest(method: "POST", target: path, body: body.serializedBytes())
        let transfer = try CurlTransfer(
            request, baseURL: endpoint, options: options(connect: connectTimeout, total: totalTimeout))
        return try transfer.response()
    }

    func options(connect: Duration, total: Duration?) -> TransferOptions {
        TransferOptions(tls: tls, connectTimeout: connect, totalTimeout: total, userAgent: "nodeagent-etcd")
    }

    /// libcurl's failure in a few words: the system's reason for a refused connect, libcurl's text otherwise
    /// (which names the certificate problem for TLS).
    func describe(_ error: TransferError) -> String {
        switch error.kind {
        case .tls: return "TLS: \(error.detail)"
        case .couldNotConnect: return error.reason
        default: return error.detail
        }
    }
}

/// One kind of request and how it ended: `kind` is the last part of the gateway path (`range`, `put`, `txn`,
/// `grant`, `keepalive`, ...), `outcome` is `success`, `unavailable` (etcd out of reach or unable to serve) or
/// `error` (etcd answered with an error).
public struct EtcdOperation: Hashable, Sendable {
    public var kind: String
    public var outcome: String

    public init(kind: String, outcome: String) {
        self.kind = kind
        self.outcome = outcome
    }
}
