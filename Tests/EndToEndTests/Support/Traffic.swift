import Foundation
import Glibc

/// How a connection attempt ended.
enum ConnectOutcome: String, Sendable {
    /// The handshake completed.
    case connected
    /// The peer answered with a reset (nothing listens there).
    case refused
    /// Nothing came back before the deadline: what a dropped SYN looks like.
    case timedOut = "timed out"
    /// An ICMP error said there is no route or host.
    case unreachable
    /// Any other error; `errorNumber` says which.
    case failed
}

/// The result of one TCP connection carrying a payload and expecting it echoed.
struct TCPResult: Sendable, CustomStringConvertible {
    var outcome: ConnectOutcome
    var errorNumber: Int32 = 0
    var bytesSent = 0
    var bytesReceived = 0
    /// The whole payload went out and the same bytes came back.
    var echoed = false
    /// The client's own address (the source the server should see without NAT).
    var localAddress: String?

    /// Connected and data went both ways.
    var passed: Bool { outcome == .connected && echoed }
    /// The handshake got no answer at all (as opposed to a refusal).
    var dropped: Bool { outcome == .timedOut }

    var description: String {
        var text = outcome.rawValue
        if errorNumber != 0 { text += " (\(String(cString: strerror(errorNumber))))" }
        if outcome == .connected { text += ", sent \(bytesSent) B, received \(bytesReceived) B, echoed: \(echoed)" }
        return text
    }
}

/// How a datagram exchange ended.
enum UDPOutcome: String, Sendable {
    case replied
    /// An ICMP port-unreachable came back.
    case refused
    case timedOut = "timed out"
    case failed
}

struct UDPResult: Sendable, CustomStringConvertible {
    var outcome: UDPOutcome
    var errorNumber: Int32 = 0
    var echoed = false

    var passed: Bool { outcome == .replied && echoed }

    var description: String {
        var text = outcome.rawValue
        if errorNumber != 0 { text += " (\(String(cString: strerror(errorNumber))))" }
        if outcome == .replied { text += ", echoed: \(echoed)" }
        return text
    }
}

/// A payload that identifies one attempt, so an echo cannot be confused with another connection's.
func uniquePayload() -> [UInt8] { Array("nodeagent e2e \(UUID().uuidString)\n".utf8) }

/// Connects from namespace `netns` to `ip`:`port` (non-blocking connect, waiting at most `timeout`), sends
/// `payload`, and waits at most `timeout` again for it to come back. Throws only when the test itself is broken
/// (no such namespace, unparsable address); network outcomes are in the result.
func tcpConnect(
    from netns: String, to ip: String, port: UInt16, timeout: TimeInterval = 1, payload: [UInt8] = uniquePayload()
) throws -> TCPResult {
    let address = try SocketAddress(ip: ip, port: port)
    let fd = try Sockets.make(in: netns, family: address.family, type: SOCK_STREAM)
    defer {
        Sockets.abortOnClose(fd)
        close(fd)
    }
    var result = TCPResult(outcome: .connected)
    if address.withSockaddr({ connect(fd, $0, $1) }) != 0 {
        guard errno == EINPROGRESS else { return TCPResult(connectError: errno) }
        let events = Sockets.wait(fd, for: Int16(POLLOUT), until: Date() + timeout)
        if events == 0 { return TCPResult(outcome: .timedOut) }
        let code = Sockets.pendingError(fd)
        if code != 0 { return TCPResult(connectError: code) }
    }
    result.localAddress = Sockets.localAddress(fd)?.ip

    let deadline = Date() + timeout
    while result.bytesSent < payload.count {
        let n = payload[result.bytesSent...].withUnsafeBytes {
            send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
        }
        if n > 0 {
            result.bytesSent += n
        } else if errno == EAGAIN {
            if Sockets.wait(fd, for: Int16(POLLOUT), until: deadline) == 0 { return result }
        } else {
            result.errorNumber = errno
            return result
        }
    }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while received.count < payload.count {
        if Sockets.wait(fd, for: Int16(POLLIN), until: deadline) == 0 { break }
        let n = recv(fd, &buffer, buffer.count, 0)
        if n > 0 {
            received += buffer[0..<n]
        } else if n == 0 || errno != EAGAIN {
            if n < 0 { result.errorNumber = errno }
            break
        }
    }
    result.bytesReceived = received.count
    result.echoed = received == payload
    return result
}

/// `tcpConnect` between two hosts of a topology, over IPv4 or (when both have one) IPv6.
func tcpConnect(
    from source: some NetworkHost, to destination: some NetworkHost, port: UInt16, ipv6: Bool = false,
    timeout: TimeInterval = 1
) throws -> TCPResult {
    try tcpConnect(from: source.netns, to: destination.address(ipv6: ipv6), port: port, timeout: timeout)
}

/// Sends one datagram from namespace `netns` to `ip`:`port` on a connected UDP socket (so an ICMP
/// port-unreachable is reported) and waits at most `timeout` for the reply.
func udpExchange(
    from netns: String, to ip: String, port: UInt16, timeout: TimeInterval = 1, payload: [UInt8] = uniquePayload()
) throws -> UDPResult {
    let address = try SocketAddress(ip: ip, port: port)
    let fd = try Sockets.make(in: netns, family: address.family, type: SOCK_DGRAM)
    defer { close(fd) }
    guard address.withSockaddr({ connect(fd, $0, $1) }) == 0 else {
        return UDPResult(outcome: .failed, errorNumber: errno)
    }
    let sent = payload.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    guard sent == payload.count else { return UDPResult(outcome: .failed, errorNumber: errno) }
    if Sockets.wait(fd, for: Int16(POLLIN), until: Date() + timeout) == 0 { return UDPResult(outcome: .timedOut) }
    var buffer = [UInt8](repeating: 0, count: 65536)
    let n = recv(fd, &buffer, buffer.count, 0)
    if n < 0 {
        return UDPResult(outcome: errno == ECONNREFUSED ? .refused : .failed, errorNumber: errno)
    }
    return UDPResult(outcome: .replied, echoed: Array(buffer[0..<n]) == payload)
}

/// `udpExchange` between two hosts of a topology.
func udpExchange(
    from source: some NetworkHost, to destination: some NetworkHost, port: UInt16, ipv6: Bool = false,
    timeout: TimeInterval = 1
) throws -> UDPResult {
    try udpExchange(from: source.netns, to: destination.address(ipv6: ipv6), port: port, timeout: timeout)
}

extension NetworkHost {
    /// The host's IPv4 address, or its IPv6 address when `ipv6` (a test error when it has none).
    func address(ipv6: Bool) throws -> String {
        guard ipv6 else { return ipv4 }
        guard let address = self.ipv6 else { throw NetnsError("\(netns) has no IPv6 address", errno: EINVAL) }
        return address
    }
}

extension TCPResult {
    fileprivate init(connectError code: Int32) {
        switch code {
        case ECONNREFUSED: self.init(outcome: .refused)
        case ETIMEDOUT: self.init(outcome: .timedOut)
        case EHOSTUNREACH, ENETUNREACH: self.init(outcome: .unreachable, errorNumber: code)
        default: self.init(outcome: .failed, errorNumber: code)
        }
    }
}
