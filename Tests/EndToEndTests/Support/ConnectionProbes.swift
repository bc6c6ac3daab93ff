import Foundation
import Glibc
import XCTest

/// A TCP connection that stays open, to check that an established flow keeps working while the agent changes
/// policy. The socket lives in the client's namespace; `close()` resets it (see `Sockets.abortOnClose`).
final class OpenConnection: @unchecked Sendable {  // used from one test thread at a time
    let description: String
    private let fd: Int32

    /// Connects from `source` to `destination`:`port`; throws unless the handshake completes within `timeout`.
    init(
        from source: some NetworkHost, to destination: some NetworkHost, port: UInt16, ipv6: Bool = false,
        timeout: TimeInterval = 1
    ) throws {
        let ip = try destination.address(ipv6: ipv6)
        description = "\(source.netns) → \(ip):\(port)"
        let address = try SocketAddress(ip: ip, port: port)
        fd = try Sockets.make(in: source.netns, family: address.family, type: SOCK_STREAM)
        if address.withSockaddr({ connect(fd, $0, $1) }) != 0 {
            let started = errno
            guard started == EINPROGRESS, Sockets.wait(fd, for: Int16(POLLOUT), until: Date() + timeout) != 0,
                Sockets.pendingError(fd) == 0
            else {
                Glibc.close(fd)
                throw AgentHarnessError("connection \(description) did not open")
            }
        }
    }

    /// Sends a fresh payload and waits for the echo; true when exactly it came back within `timeout`.
    func exchange(timeout: TimeInterval = 1) -> Bool {
        let payload = uniquePayload()
        let deadline = Date() + timeout
        var sent = 0
        while sent < payload.count {
            let n = payload[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                sent += n
            } else if errno != EAGAIN || Sockets.wait(fd, for: Int16(POLLOUT), until: deadline) == 0 {
                return false
            }
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while received.count < payload.count {
            guard Sockets.wait(fd, for: Int16(POLLIN), until: deadline) != 0 else { return false }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 {
                received += buffer[0..<n]
            } else if n == 0 || errno != EAGAIN {
                return false
            }
        }
        return received == payload
    }

    func close() {
        Sockets.abortOnClose(fd)
        Glibc.close(fd)
    }
}
