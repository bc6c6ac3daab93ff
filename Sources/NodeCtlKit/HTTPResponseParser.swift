/// Incremental HTTP/1.1 response parser: feed it bytes as they arrive, in pieces of any size, and it hands back
/// the head once complete and the decoded body bytes (de-chunked) as they become available.
public struct HTTPResponseParser: Sendable {
    /// Largest status line plus headers accepted; the agent's heads are a few hundred bytes.
    public static let maxHeadBytes = 64 * 1024

    private enum State: Sendable, Equatable {
        case head
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case done
    }

    private var state: State = .head
    private var buffer: [UInt8] = []
    /// The request method matters for bodies: a response to HEAD has none whatever its headers say.
    private let requestMethod: String

    /// The head, once it has been read completely.
    public private(set) var head: HTTPResponseHead?

    public init(requestMethod: String = "GET") {
        self.requestMethod = requestMethod
    }

    /// True once the body has ended by its own framing (Content-Length reached or last chunk seen).
    public var isComplete: Bool { state == .done }

    /// Consumes `bytes`; returns the body bytes they completed (possibly several pieces, possibly none).
    public mutating func feed(_ bytes: [UInt8]) throws(ClientError) -> [[UInt8]] {
        buffer.append(contentsOf: bytes)
        var pieces: [[UInt8]] = []
        while true {
            switch state {
            case .head:
                guard try parseHead() else { return pieces }
            case .fixedBody(let remaining):
                if remaining == 0 { state = .done; continue }
                guard !buffer.isEmpty else { return pieces }
                let n = min(remaining, buffer.count)
                pieces.append(Array(buffer[0..<n]))
                buffer.removeFirst(n)
                state = .fixedBody(remaining: remaining - n)
            case .chunkSize:
                guard let line = takeLine() else {
                    if buffer.count > 1024 { throw .malformedResponse("chunk size line too long") }
                    return pieces
                }
                let size = try parseChunkSize(line)
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard !buffer.isEmpty else { return pieces }
                let n = min(remaining, buffer.count)
                pieces.append(Array(buffer[0..<n]))
                buffer.removeFirst(n)
                state = n == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - n)
            case .chunkDataEnd:
                guard let line = takeLine() else { return pieces }
                guard line.isEmpty else { throw .malformedResponse("chunk data longer than its declared size") }
                state = .chunkSize
            case .trailers:
                // Trailer fields are allowed after the last chunk; none of them matter to us.
                guard let line = takeLine() else { return pieces }
                if line.isEmpty { state = .done }
            case .untilClose:
                if !buffer.isEmpty {
                    pieces.append(buffer)
                    buffer.removeAll()
                }
                return pieces
            case .done:
                return pieces
            }
        }
    }

    /// Called when the peer closed the connection; throws unless the response was complete at that point.
    public mutating func finish() throws(ClientError) {
        switch state {
        case .done: return
        case .untilClose: state = .done
        case .head:
            throw .malformedResponse(
                buffer.isEmpty ? "connection closed before any response" : "connection closed inside the headers")
        case .fixedBody(let remaining):
            throw .malformedResponse("connection closed with \(remaining) body bytes still expected")
        case .chunkSize, .chunkData, .chunkDataEnd, .trailers:
            throw .malformedResponse("connection closed before the last chunk")
        }
    }

    /// Takes one line ending in LF (a preceding CR is dropped) from the buffer, without its terminator.
    private mutating func takeLine() -> [UInt8]? {
        guard let lf = buffer.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        var line = Array(buffer[0..<lf])
        buffer.removeFirst(lf + 1)
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return line
    }

    /// Parses the head if the buffer holds all of it; returns false when more bytes are needed.
    private mutating func parseHead() throws(ClientError) -> Bool {
        guard let end = headEnd() else {
            if buffer.count > Self.maxHeadBytes {
                throw .malformedResponse("response head larger than \(Self.maxHeadBytes) bytes")
            }
            return false
        }
        let headBytes = Array(buffer[0..<end.start])
        buffer.removeFirst(end.afterTerminator)
        // Split on LF bytes, not on Characters: Swift treats "\r\n" as one Character, which never equals "\n".
        var lines = headBytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map {
            line -> Substring in
            let trimmed = line.last == UInt8(ascii: "\r") ? line.dropLast() : line
            return Substring(String(decoding: trimmed, as: UTF8.self))
        }
        let statusLine = lines.removeFirst()
        let parsed = try parseStatusLine(statusLine)

        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else {
                throw .malformedResponse("header line without ':': \(line.prefix(80))")
            }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingWhitespace()
            if let existing = headers[name] {
                headers[name] = existing + ", " + value
            } else {
                headers[name] = value
            }
        }

        // Interim 1xx responses precede the real one; skip them and parse again.
        if (100..<200).contains(parsed.status) { return true }

        head = HTTPResponseHead(status: parsed.status, reason: parsed.reason, headers: headers)
        if requestMethod == "HEAD" || parsed.status == 204 || parsed.status == 304 {
            state = .done
        } else if let te = headers["transfer-encoding"] {
            guard te.lowercased().split(separator: ",").last?.trimmingWhitespace() == "chunked" else {
                throw .malformedResponse("unsupported transfer-encoding \(te)")
            }
            state = .chunkSize
        } else if let cl = headers["content-length"] {
            guard let length = Int(cl), length >= 0 else {
                throw .malformedResponse("invalid content-length \(cl)")
            }
            state = .fixedBody(remaining: length)
        } else {
            state = .untilClose
        }
        return true
    }

    /// Finds the empty line that ends the head: CRLF CRLF, or bare LF LF from a lenient peer.
    private func headEnd() -> (start: Int, afterTerminator: Int)? {
        let lf = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
        var i = 0
        while i < buffer.count {
            if buffer[i] == lf {
                if i + 1 < buffer.count && buffer[i + 1] == lf { return (i, i + 2) }
                if i + 2 < buffer.count && buffer[i + 1] == cr && buffer[i + 2] == lf { return (i, i + 3) }
            }
            i += 1
        }
        return nil
    }

    private func parseStatusLine(_ line: Substring) throws(ClientError) -> (status: Int, reason: String) {
        // "HTTP/1.1 200 OK"; the reason phrase may be empty or absent.
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3,
            let status = Int(parts[1]), (100...599).contains(status)
        else {
            throw .malformedResponse("invalid status line: \(line.prefix(80))")
        }
        return (status, parts.count > 2 ? String(parts[2]) : "")
    }

    private func parseChunkSize(_ line: [UInt8]) throws(ClientError) -> Int {
        // Chunk extensions (";name=value") are allowed and ignored.
        let text = String(decoding: line, as: UTF8.self)
        let hex = text.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingWhitespace()
        guard !hex.isEmpty, hex.count <= 15, let size = Int(hex, radix: 16), size >= 0 else {
            throw .malformedResponse("invalid chunk size \(text.prefix(40))")
        }
        return size
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
