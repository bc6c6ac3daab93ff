import AgentAPI

/// Feeds a streaming response to libmicrohttpd: asks the handler's `next` for bytes and copies them into MHD's
/// buffer, keeping what does not fit for the next call.
///
/// MHD calls it from the worker thread that serves the connection, one call at a time. Retained by the MHD
/// response and released by its free callback, which MHD calls when the response is done or the client is gone:
/// that drops `next` and everything the handler captured in it.
final class StreamReader {
    enum Chunk {
        case bytes(Int)
        case nothingYet
        case end
    }

    private let next: @Sendable () -> [UInt8]?
    private var pending: [UInt8] = []
    private var offset = 0
    private var ended = false

    init(next: @escaping @Sendable () -> [UInt8]?) {
        self.next = next
    }

    /// Copies up to `buffer.count` bytes of the stream into `buffer`.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Chunk {
        if offset == pending.count {
            if ended { return .end }
            guard let chunk = next() else {
                ended = true
                return .end
            }
            if chunk.isEmpty { return .nothingYet }
            pending = chunk
            offset = 0
        }
        let count = min(buffer.count, pending.count - offset)
        pending.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<offset + count]))
        }
        offset += count
        return .bytes(count)
    }
}
