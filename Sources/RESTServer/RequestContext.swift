/// What the server keeps about one request between libmicrohttpd's calls for it: the body as it arrives.
/// Owned through the connection's `con_cls` slot and released when MHD reports the request completed.
final class RequestContext {
    let started = ContinuousClock.now
    private(set) var body: [UInt8] = []
    /// Set once the body outgrew the limit; the rest is read and dropped so the 413 can be sent in order.
    private(set) var tooLarge = false
    private(set) var droppedBytes = 0

    init(expectedLength: Int?) {
        if let expectedLength, expectedLength > 0 { body.reserveCapacity(expectedLength) }
    }

    /// Appends a piece of the body unless that makes it exceed `limit`. Returns false when the client keeps
    /// sending far beyond the limit, which is reason enough to drop the connection.
    func append(_ bytes: UnsafeRawBufferPointer, limit: Int) -> Bool {
        if !tooLarge, body.count + bytes.count <= limit {
            body.append(contentsOf: bytes)
            return true
        }
        if !tooLarge {
            tooLarge = true
            droppedBytes = body.count
            body = []
        }
        droppedBytes += bytes.count
        return droppedBytes <= limit * 8
    }
}
