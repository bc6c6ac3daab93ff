import CMicroHTTPD

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Starts libmicrohttpd on `listenFD` with callbacks that reach `core` through their `cls` pointer.
/// C function pointers cannot capture context, so each closure here captures nothing and recovers the server from
/// `cls`; the caller keeps `core` retained until the daemon has stopped.
func startDaemon(listenFD: Int32, threads: Int, timeoutSeconds: Int, core: Unmanaged<ServerCore>) -> OpaquePointer? {
    let cls = core.toOpaque()
    return cmhd_start_unix_daemon(
        listenFD, UInt32(clamping: threads), UInt32(clamping: timeoutSeconds),
        { cls, connection, url, method, _, upload, uploadSize, slot in
            guard let cls, let connection, let uploadSize, let slot else { return .NO }
            let core = Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue()
            return core.access(
                connection: connection, url: url.map { String(cString: $0) } ?? "/",
                method: method.map { String(cString: $0) } ?? "", upload: UnsafeRawPointer(upload),
                uploadSize: uploadSize, slot: slot)
        }, cls,
        { cls, _, slot, _ in
            guard let cls, let slot else { return }
            Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue().completed(slot: slot)
        }, cls,
        { cls, format, arguments in
            guard let cls, let format, let arguments else { return }
            var buffer = [CChar](repeating: 0, count: 512)
            _ = vsnprintf(&buffer, buffer.count, format, arguments)
            let message = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let core = Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue()
            core.logger.log(
                level: message.isAboutAClientLeaving ? .debug : .notice,
                "libmicrohttpd: \(message.trimmingTrailingNewlines)")
        }, cls)
}

extension String {
    /// MHD reports a client hanging up mid-response as an error, but for a follower that is how it normally ends.
    fileprivate var isAboutAClientLeaving: Bool {
        contains("no longer available for sending") || contains("application error generating response")
            || contains("Connection reset by peer") || contains("Broken pipe")
    }

    fileprivate var trimmingTrailingNewlines: Substring {
        var text = self[...]
        while text.last == "\n" { text = text.dropLast() }
        return text
    }
}
