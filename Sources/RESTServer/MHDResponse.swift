import AgentAPI
import CMicroHTTPD

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A streaming response's state as MHD's content-reader callback sees it (through its `cls` pointer).
final class StreamSource {
    let reader: StreamReader
    /// The connection the response was created for; a streaming response is never shared between connections,
    /// which is what makes suspending it from the reader callback safe.
    let connection: OpaquePointer
    let socket: Int32
    let waker: StreamWaker

    init(reader: StreamReader, connection: OpaquePointer, waker: StreamWaker) {
        self.reader = reader
        self.connection = connection
        self.socket = cmhd_connection_fd(connection)
        self.waker = waker
        waker.streamOpened()
    }

    deinit { waker.streamClosed() }

    /// MHD's content-reader contract: bytes written, 0 for "nothing yet", or an end marker.
    func fill(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        if waker.isStopping { return endOfStream }
        switch reader.read(into: buffer) {
        case .bytes(let count):
            return count
        case .end:
            return endOfStream
        case .nothingYet:
            // A parked connection is not watched for disconnects, so check before parking; otherwise a follower
            // whose client left would be resumed and parked again forever.
            if peerHasHungUp { return endWithError }
            waker.park(connection)
            return 0
        }
    }

    private var endOfStream: Int { -1 }  // MHD_CONTENT_READER_END_OF_STREAM
    private var endWithError: Int { -2 }  // MHD_CONTENT_READER_END_WITH_ERROR

    /// The client closed its end: a peek reads end-of-file (or the socket has failed).
    private var peerHasHungUp: Bool {
        guard socket >= 0 else { return false }
        var byte: UInt8 = 0
        let count = recv(socket, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        if count == 0 { return true }
        if count < 0 { return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR }
        return false
    }
}

/// Queues `response` on `connection`. Returns MHD's verdict (MHD_NO closes the connection).
func queue(_ response: APIResponse, on connection: OpaquePointer, waker: StreamWaker) -> MHD_Result {
    let created: OpaquePointer?
    if let next = response.stream {
        let source = StreamSource(reader: StreamReader(next: next), connection: connection, waker: waker)
        let cls = Unmanaged.passRetained(source).toOpaque()
        created = MHD_create_response_from_callback(
            UInt64.max,  // MHD_SIZE_UNKNOWN: sent chunked
            16 * 1024,
            { cls, _, buffer, max in
                guard let cls, let buffer else { return -2 }
                let source = Unmanaged<StreamSource>.fromOpaque(cls).takeUnretainedValue()
                return source.fill(UnsafeMutableRawBufferPointer(start: buffer, count: max))
            }, cls,
            { cls in
                guard let cls else { return }
                Unmanaged<StreamSource>.fromOpaque(cls).release()
            })
        if created == nil { Unmanaged<StreamSource>.fromOpaque(cls).release() }
    } else {
        created = response.body.withUnsafeBytes { bytes in
            MHD_create_response_from_buffer(
                bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress), .RESPMEM_MUST_COPY)
        }
    }
    guard let mhdResponse = created else { return .NO }
    defer { MHD_destroy_response(mhdResponse) }
    _ = MHD_add_response_header(mhdResponse, "Content-Type", response.contentType)
    for (name, value) in response.headers {
        _ = MHD_add_response_header(mhdResponse, name, value)
    }
    return MHD_queue_response(connection, UInt32(clamping: response.status), mhdResponse)
}
