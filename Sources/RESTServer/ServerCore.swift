import AgentAPI
import CMicroHTTPD
import Logging

/// What libmicrohttpd's callbacks reach through their `cls` pointer. Immutable (the waker guards its own state),
/// so any number of worker threads share it.
final class ServerCore: Sendable {
    let router: Router
    let maxBodyBytes: Int
    let logger: Logger
    let waker: StreamWaker

    init(router: Router, maxBodyBytes: Int, logger: Logger, waker: StreamWaker) {
        self.router = router
        self.maxBodyBytes = maxBodyBytes
        self.logger = logger
        self.waker = waker
    }

    /// MHD's access handler. It is called once with the headers, then once per piece of body, then once more with
    /// no data: the response is queued on that last call. Queuing on the first call would be simpler, but MHD then
    /// closes keep-alive connections after every response, which costs more than half the throughput.
    func access(
        connection: OpaquePointer, url: String, method: String, upload: UnsafeRawPointer?,
        uploadSize: UnsafeMutablePointer<Int>, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    ) -> MHD_Result {
        guard let raw = slot.pointee else {
            let length = LiveConnection(connection).contentLength
            let context = RequestContext(expectedLength: min(length ?? 0, maxBodyBytes))
            slot.pointee = Unmanaged.passRetained(context).toOpaque()
            if let length, length > maxBodyBytes {
                // Refuse before the body is sent: no "100 Continue" goes out and MHD closes the connection instead
                // of reading a body nobody wants.
                return finish(.error(.payloadTooLarge(limit: maxBodyBytes)), connection, method, url, context)
            }
            return .YES
        }
        let context = Unmanaged<RequestContext>.fromOpaque(raw).takeUnretainedValue()
        if uploadSize.pointee > 0 {
            let keep = context.append(
                UnsafeRawBufferPointer(start: upload, count: uploadSize.pointee), limit: maxBodyBytes)
            uploadSize.pointee = 0
            if !keep {
                logger.notice("dropping connection: request body far beyond the limit", metadata: ["path": "\(url)"])
            }
            return keep ? .YES : .NO
        }
        if context.tooLarge {
            return finish(.error(.payloadTooLarge(limit: maxBodyBytes)), connection, method, url, context)
        }
        let response: APIResponse
        if let httpMethod = HTTPMethod(rawValue: method) {
            // The handler runs within this call, while MHD's connection (and its socket) are alive.
            let live = LiveConnection(connection)
            let request = APIRequest(
                method: httpMethod, path: url,
                query: connectionValues(connection, kind: .GET_ARGUMENT_KIND),
                body: context.body, header: { live.header($0) }, peer: { live.peer })
            response = router.route(request)
        } else {
            response = router.methodNotAllowed(method, path: url)
        }
        return finish(response, connection, method, url, context)
    }

    /// MHD's request-completed callback: releases the request's context.
    func completed(slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
        guard let raw = slot.pointee else { return }
        Unmanaged<RequestContext>.fromOpaque(raw).release()
        slot.pointee = nil
    }

    private func finish(
        _ response: APIResponse, _ connection: OpaquePointer, _ method: String, _ url: String,
        _ context: RequestContext
    ) -> MHD_Result {
        let result = queue(response, on: connection, waker: waker)
        log(
            response, method: method, path: url, peer: { LiveConnection(connection).peer },
            context: context, queued: result == .YES)
        return result
    }

    /// Mutating requests at info with the caller's credentials, reads at debug, server failures at error. The
    /// metadata is built only when the level is logged: reads are most requests, and their debug lines are off by
    /// default.
    private func log(
        _ response: APIResponse, method: String, path: String, peer: () -> PeerCredentials?,
        context: RequestContext, queued: Bool
    ) {
        let level: Logger.Level
        if response.status >= 500 || !queued {
            level = .error
        } else if HTTPMethod(rawValue: method)?.isMutating ?? false {
            level = .info
        } else {
            level = .debug
        }
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = [
            "method": "\(method)", "path": "\(path)", "status": "\(response.status)",
            "duration-us": "\((ContinuousClock.now - context.started).microseconds)",
        ]
        if let peer = peer() {
            metadata["uid"] = "\(peer.uid)"
            metadata["gid"] = "\(peer.gid)"
            metadata["pid"] = "\(peer.pid)"
        }
        if response.stream != nil { metadata["streaming"] = "true" }
        if !queued { metadata["queued"] = "false" }
        logger.log(level: level, "\(method) \(path) \(response.status)", metadata: metadata)
    }
}

extension Duration {
    fileprivate var microseconds: Int64 {
        components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
    }
}
