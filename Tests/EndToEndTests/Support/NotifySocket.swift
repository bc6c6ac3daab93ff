import Foundation
import Glibc

/// The service manager's end of the sd_notify protocol: a Unix datagram socket at a path, as systemd passes in
/// `$NOTIFY_SOCKET`. Each datagram is one notification of newline-separated `KEY=VALUE` assignments.
final class NotifySocket: @unchecked Sendable {
    let path: String
    private let fd: Int32

    init(path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NetnsError("socket(AF_UNIX, SOCK_DGRAM)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8) + [0]
        guard bytes.count <= MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(fd)
            throw NetnsError("socket path too long: \(path)", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        unlink(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else {
            Glibc.close(fd)
            throw NetnsError("bind \(path)")
        }
        self.fd = fd
        self.path = path
    }

    /// The next notification's assignments, or nil when none arrives within `timeout`.
    func receive(timeout: TimeInterval) -> [String]? {
        let deadline = Date() + timeout
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let waitMs = Int32(max(1, min(100, deadline.timeIntervalSinceNow * 1000)))
            guard poll(&entry, 1, waitMs) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n > 0 { return String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").map(String.init) }
        }
        return nil
    }

    /// Notifications until one contains `assignment` (returned with everything received before it), or nil after
    /// `timeout`.
    func waitFor(_ assignment: String, timeout: TimeInterval) -> (match: [String], before: [[String]])? {
        let deadline = Date() + timeout
        var before: [[String]] = []
        while let message = receive(timeout: max(0, deadline.timeIntervalSinceNow)) {
            if message.contains(assignment) { return (message, before) }
            before.append(message)
        }
        return nil
    }

    func close() {
        Glibc.close(fd)
        unlink(path)
    }
}
