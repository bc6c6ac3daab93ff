import AgentAPI
import Dispatch
import FoundationEssentials
import Glibc
import HTTPClient
import Synchronization

/// A watch of a key prefix: one long `POST /v3/watch` whose answer is a stream of newline-separated JSON objects,
/// read on the watch's own thread.
///
/// Events go to `onEvents` in revision order. The watch ends with one call of `onError` when the stream breaks,
/// cannot be opened on any endpoint, or etcd cancels it (a compacted start revision included), or silently with
/// `cancel()`. Handlers run on the watch thread; after `cancel()` returns none runs.
public final class EtcdWatch: Sendable {
    public typealias EventHandler = @Sendable (_ events: [EtcdEvent], _ revision: Int64) -> Void
    public typealias ErrorHandler = @Sendable (EtcdWatchFailure) -> Void

    public let prefix: String
    private let client: EtcdClient
    private let createRequest: JSON
    private let onEvents: EventHandler
    private let onError: ErrorHandler
    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)

    private struct State {
        var cancelled = false
        var ended = false
        /// The waker of the transfer in progress, to cut its wait short on `cancel()`.
        var waker: TransferWaker?
        var thread: pthread_t?
        var endpoint: String?
    }

    init(
        client: EtcdClient, prefix: String, fromRevision: Int64, prevKV: Bool, onEvents: @escaping EventHandler,
        onError: @escaping ErrorHandler
    ) {
        self.client = client
        self.prefix = prefix
        self.onEvents = onEvents
        self.onError = onError
        let range = EtcdRangeRequest(prefix: prefix)
        var create: [String: JSON] = ["key": EtcdJSON.bytes(range.key)]
        if let end = range.rangeEnd { create["range_end"] = EtcdJSON.bytes(end) }
        if fromRevision > 0 { create["start_revision"] = EtcdJSON.int64(fromRevision) }
        if prevKV { create["prev_kv"] = true }
        createRequest = ["create_request": .object(create)]
    }

    func start() {
        BackgroundThread.start(name: "etcd-watch") { [self] in
            state.withLock { $0.thread = pthread_self() }
            run()
            state.withLock {
                $0.ended = true
                $0.waker = nil
            }
            finished.signal()
        }
    }

    /// Ends the watch and its request; returns once the watch thread is done (at once when called from a
    /// handler). Idempotent.
    public func cancel() {
        let (waker, onWatchThread, ended) = state.withLock { state in
            state.cancelled = true
            let onThread = state.thread.map { pthread_equal($0, pthread_self()) != 0 } ?? false
            return (state.waker, onThread, state.ended)
        }
        waker?.wake()
        guard !onWatchThread, !ended else { return }
        finished.wait()
        finished.signal()  // a later cancel() returns at once
    }

    private var cancelled: Bool { state.withLock { $0.cancelled } }

    /// The endpoint whose stream the watch reads, once one took it: a member that stops answering does not end
    /// the stream, it only goes quiet, so the watch's owner asks this member whether it still answers.
    public var endpoint: String? { state.withLock { $0.endpoint } }

    /// Opens the stream on the first endpoint that takes it, then reads it until it ends or is cancelled.
    private func run() {
        var failures: [String] = []
        for endpoint in client.endpointsInOrder() {
            if cancelled { return }
            switch open(endpoint) {
            case .opened(let transfer):
                client.prefer(endpoint)
                state.withLock { $0.endpoint = endpoint }
                if let failure = read(transfer, endpoint: endpoint), !cancelled { onError(failure) }
                return
            case .tryNext(let why):
                failures.append("\(endpoint) (\(why))")
            case .failed(let failure):
                if !cancelled { onError(failure) }
                return
            case .cancelled:
                return
            }
        }
        let message = "etcd is unreachable for a watch of \(prefix): tried \(failures.joined(separator: ", "))"
        if !cancelled { onError(.broken(.unavailable(message))) }
    }

    private enum Opening {
        case opened(CurlTransfer)
        case tryNext(String)
        case failed(EtcdWatchFailure)
        case cancelled
    }

    /// Sends the create request to `endpoint` and waits, at most the client's request timeout, for a 200 head.
    private func open(_ endpoint: String) -> Opening {
        let timeout = client.requestTimeout
        let request = HTTPRequest(method: "POST", target: "/v3/watch", body: createRequest.serializedBytes())
        let transfer: CurlTransfer
        do {
            transfer = try CurlTransfer(
                request, baseURL: endpoint, options: client.options(connect: timeout, total: nil))
        } catch {
            return .failed(.broken(.internal("etcd watch: \(error.detail)")))
        }
        let cancelledBefore = state.withLock { state in
            state.waker = transfer.waker
            return state.cancelled
        }
        if cancelledBefore { return .cancelled }
        let deadline = ContinuousClock.now + timeout
        var errorBody: [UInt8] = []
        while true {
            let step = transfer.step(timeout: deadline - ContinuousClock.now)
            if cancelled { return .cancelled }
            if let head = transfer.head {
                if head.status == 200 { return .opened(transfer) }
                errorBody += transfer.takeBody()
                guard case .finished = step else { continue }
                let error = EtcdGatewayError(HTTPResponse(head: head, body: errorBody))
                if let error, error.isUnavailable { return .tryNext(error.message) }
                return .failed(.broken(error?.agentError ?? .internal("etcd watch answered \(head.status)")))
            }
            switch step {
            case .finished(let error):
                // A watch only reads: whatever failed before an answer, another member may serve it.
                return .tryNext(error.map { client.describe($0) } ?? "no response")
            case .idle where ContinuousClock.now >= deadline:
                return .tryNext("no answer within \(timeout.seconds)s")
            default:
                continue
            }
        }
    }

    /// Reads the stream until it ends; the failure to report, or nil when cancelled.
    private func read(_ transfer: CurlTransfer, endpoint: String) -> EtcdWatchFailure? {
        var splitter = LineSplitter()
        var end: TransferError?? = nil
        while true {
            // Bytes may have come with the head already: read what is there before waiting for more.
            for line in splitter.feed(transfer.takeBody()) where !line.isEmpty {
                if let failure = handle(line) { return failure }
                if cancelled { return nil }
            }
            if let end {
                let why = end.map { client.describe($0) } ?? "etcd ended the stream"
                return .broken(.unavailable("etcd watch of \(prefix) on \(endpoint) broke: \(why)"))
            }
            // The wait is cut short by `cancel()`; the hour only bounds a wait nothing interrupts.
            let step = transfer.step(timeout: .seconds(3600))
            if cancelled { return nil }
            if case .finished(let error) = step { end = .some(error) }
        }
    }

    /// One line of the stream: `{"result": WatchResponse}` or `{"error": {...}}`. Returns the failure that ends
    /// the watch, if the line says so.
    private func handle(_ line: String) -> EtcdWatchFailure? {
        let json: JSON
        do {
            json = try JSON.parse(line)
        } catch {
            return .broken(.internal("etcd watch sent a line that is not JSON: \(error.message)"))
        }
        if let error = json["error"] { return .broken(EtcdGatewayError(json: error, status: 500).agentError) }
        guard let result = json["result"] else { return nil }
        do {
            if result["canceled"]?.boolValue == true {
                let compacted = try EtcdJSON.decodeInt64(result["compact_revision"], field: "compact_revision")
                if compacted > 0 { return .compacted(compactRevision: compacted) }
                let reason = result["cancel_reason"]?.stringValue ?? "no reason given"
                return .broken(.unavailable("etcd cancelled the watch of \(prefix): \(reason)"))
            }
            var events: [EtcdEvent] = []
            for event in result["events"]?.arrayValue ?? [] { events.append(try EtcdEvent(json: event)) }
            if !events.isEmpty { onEvents(events, try EtcdJSON.revision(result)) }
            return nil
        } catch {
            return .broken(error)
        }
    }
}

extension EtcdClient {
    /// Watches every key starting with `prefix`, from `fromRevision` (0: from now; a list's revision + 1 to see
    /// every change after the list), on a thread of its own. `prevKV` asks for each key's previous value too.
    ///
    /// The watch runs until `cancel()` or until it fails (`onError`, once): after a failure, list again and
    /// start a new watch from the list's revision + 1.
    public func watch(
        prefix: String, fromRevision: Int64 = 0, prevKV: Bool = false,
        onEvents: @escaping EtcdWatch.EventHandler, onError: @escaping EtcdWatch.ErrorHandler
    ) -> EtcdWatch {
        let watch = EtcdWatch(
            client: self, prefix: prefix, fromRevision: fromRevision, prevKV: prevKV, onEvents: onEvents,
            onError: onError)
        watch.start()
        return watch
    }
}
