import Foundation
import Glibc

/// Counts of what a `ConnectionProber` saw.
struct ProbeTally: Sendable, CustomStringConvertible {
    var attempts = 0
    /// Connected and the payload came back.
    var echoed = 0
    /// The handshake completed (echoed or not).
    var connected = 0
    var refused = 0
    /// No answer to the handshake before the deadline: a dropped SYN.
    var timedOut = 0
    /// Connected, but the echo did not come back complete before the deadline.
    var echoLost = 0
    var otherErrors = 0
    /// The first few failures, with the time they happened, for the failure message.
    var samples: [String] = []

    var description: String {
        "\(attempts) attempts: \(echoed) echoed, \(connected) connected, \(refused) refused, \(timedOut) timed out, "
            + "\(echoLost) echo lost, \(otherErrors) other errors" + (samples.isEmpty ? "" : "; first: \(samples)")
    }
}

/// Opens a new TCP connection from a namespace to `ip:port` every `interval`, without waiting for earlier ones:
/// each connects without blocking, sends a payload and waits for its echo, all driven by one poll loop. Dropped
/// handshakes therefore cost no cadence. Runs on its own thread until `stop()`.
final class ConnectionProber: @unchecked Sendable {
    let netns: String
    let ip: String
    let port: UInt16
    let interval: TimeInterval
    let deadline: TimeInterval

    private struct Pending {
        var fd: Int32
        var payload: [UInt8]
        var received: [UInt8] = []
        var sent = false
        var connected = false
        var deadline: Date
    }

    /// Guards `tally` and `stopping` (what makes the class Sendable).
    private let state = Locked((tally: ProbeTally(), stopping: false))
    private let finished = DispatchSemaphore(value: 0)

    init(
        from netns: String, to ip: String, port: UInt16, every interval: TimeInterval = 0.01,
        deadline: TimeInterval = 1
    ) {
        self.netns = netns
        self.ip = ip
        self.port = port
        self.interval = interval
        self.deadline = deadline
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "prober \(ip):\(port)"
        thread.start()
    }

    var tally: ProbeTally { state.current.tally }

    /// Stops opening connections, lets those under way finish (or time out), and returns the final counts.
    /// Later calls return the same counts at once.
    @discardableResult
    func stop() -> ProbeTally {
        let first = state.withLock { state in
            defer { state.stopping = true }
            return !state.stopping
        }
        if first { finished.wait() }
        return tally
    }

    private func record(_ change: (inout ProbeTally) -> Void) { state.withLock { change(&$0.tally) } }

    private func sample(_ text: String) {
        record { tally in
            if tally.samples.count < 5 { tally.samples.append("\(Date().timeIntervalSince1970): \(text)") }
        }
    }

    private func run() {
        var pending: [Pending] = []
        var nextStart = Date()
        while true {
            let stopping = state.current.stopping
            if stopping && pending.isEmpty { return }
            let now = Date()
            if !stopping && now >= nextStart {
                nextStart = max(nextStart + interval, now - interval)
                if let started = start() { pending.append(started) }
            }
            var fds = pending.map { pollfd(fd: $0.fd, events: Int16($0.connected ? POLLIN : POLLOUT), revents: 0) }
            let wait = max(0, min(nextStart.timeIntervalSinceNow, 0.01))
            _ = poll(&fds, nfds_t(fds.count), Int32((wait * 1000).rounded(.up)))
            var keep: [Pending] = []
            for (index, var entry) in pending.enumerated() {
                if fds[index].revents != 0, let done = advance(&entry), done {
                    finish(entry)
                    continue
                }
                if Date() >= entry.deadline {
                    record { entry.connected ? ($0.echoLost += 1) : ($0.timedOut += 1) }
                    if entry.connected { sample("echo lost") }
                    finish(entry)
                    continue
                }
                keep.append(entry)
            }
            pending = keep
        }
    }

    private func start() -> Pending? {
        record { $0.attempts += 1 }
        do {
            let address = try SocketAddress(ip: ip, port: port)
            let fd = try Sockets.make(in: netns, family: address.family, type: SOCK_STREAM)
            let rc = address.withSockaddr { connect(fd, $0, $1) }
            if rc != 0 && errno != EINPROGRESS {
                let code = errno
                close(fd)
                record { code == ECONNREFUSED ? ($0.refused += 1) : ($0.otherErrors += 1) }
                sample("connect: \(String(cString: strerror(code)))")
                return nil
            }
            return Pending(fd: fd, payload: uniquePayload(), deadline: Date() + deadline)
        } catch {
            record { $0.otherErrors += 1 }
            sample("\(error)")
            return nil
        }
    }

    /// Moves a connection on after poll reported it ready; true when it is finished (either way).
    private func advance(_ entry: inout Pending) -> Bool? {
        if !entry.connected {
            let code = Sockets.pendingError(entry.fd)
            if code != 0 {
                record { code == ECONNREFUSED ? ($0.refused += 1) : ($0.otherErrors += 1) }
                sample("handshake: \(String(cString: strerror(code)))")
                return true
            }
            entry.connected = true
            record { $0.connected += 1 }
        }
        if !entry.sent {
            let n = entry.payload.withUnsafeBytes { send(entry.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n == entry.payload.count else {
                record { $0.otherErrors += 1 }
                sample("send: \(n)")
                return true
            }
            entry.sent = true
            return false
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(entry.fd, &buffer, buffer.count, 0)
        if n > 0 {
            entry.received += buffer[0..<n]
            if entry.received.count >= entry.payload.count {
                if entry.received == entry.payload {
                    record { $0.echoed += 1 }
                } else {
                    record { $0.echoLost += 1 }
                    sample("echo differs")
                }
                return true
            }
            return false
        }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return false }
        record { $0.echoLost += 1 }
        sample(n == 0 ? "closed before the echo" : "recv: \(String(cString: strerror(errno)))")
        return true
    }

    private func finish(_ entry: Pending) {
        Sockets.abortOnClose(entry.fd)
        close(entry.fd)
    }
}

/// One long-lived TCP connection that streams data both ways: a thread writes a numbered block, waits for the
/// echo, checks it, and goes again every `pause`, until `stop()`. Any error or a round trip longer than
/// `stallLimit` counts, and a broken connection ends the stream.
final class StreamingConnection: @unchecked Sendable {
    struct Tally: Sendable, CustomStringConvertible {
        var rounds = 0
        var bytes = 0
        var errors = 0
        var slowestRoundTrip: TimeInterval = 0
        var broken: String?

        var description: String {
            "\(rounds) round trips, \(bytes) B echoed, \(errors) errors, slowest \(Int(slowestRoundTrip * 1000)) ms"
                + (broken.map { ", broken: \($0)" } ?? "")
        }
    }

    /// Guards `tally` and `stopping` (what makes the class Sendable).
    private let state = Locked((tally: Tally(), stopping: false))
    private let finished = DispatchSemaphore(value: 0)
    private let fd: Int32
    let stallLimit: TimeInterval

    init(
        from netns: String, to ip: String, port: UInt16, blockSize: Int = 1024, pause: TimeInterval = 0.005,
        stallLimit: TimeInterval = 2
    ) throws {
        self.stallLimit = stallLimit
        let address = try SocketAddress(ip: ip, port: port)
        fd = try Sockets.make(in: netns, family: address.family, type: SOCK_STREAM)
        if address.withSockaddr({ connect(fd, $0, $1) }) != 0 {
            guard errno == EINPROGRESS, Sockets.wait(fd, for: Int16(POLLOUT), until: Date() + 2) != 0,
                Sockets.pendingError(fd) == 0
            else {
                close(fd)
                throw NetnsError("streaming connection to \(ip):\(port) could not connect")
            }
        }
        let thread = Thread { [self] in
            run(blockSize: blockSize, pause: pause)
            Sockets.abortOnClose(fd)
            close(fd)
            finished.signal()
        }
        thread.name = "stream \(ip):\(port)"
        thread.start()
    }

    var tally: Tally { state.current.tally }

    @discardableResult
    func stop() -> Tally {
        let first = state.withLock { state in
            defer { state.stopping = true }
            return !state.stopping
        }
        if first { finished.wait() }
        return tally
    }

    private func run(blockSize: Int, pause: TimeInterval) {
        var sequence: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !state.current.stopping {
            sequence += 1
            var block = Array("block \(sequence) ".utf8)
            block += [UInt8](repeating: UInt8(truncatingIfNeeded: sequence), count: blockSize - block.count)
            let started = Date()
            let stallDeadline = started + stallLimit
            var sent = 0
            var received: [UInt8] = []
            var failure: String?
            while failure == nil && received.count < block.count {
                if sent < block.count {
                    let n = block[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n > 0 {
                        sent += n
                    } else if errno != EAGAIN && errno != EINTR {
                        failure = "send: \(String(cString: strerror(errno)))"
                        break
                    }
                }
                let events = Sockets.wait(fd, for: Int16(POLLIN), until: min(stallDeadline, Date() + 0.05))
                if events == 0 {
                    if Date() >= stallDeadline { failure = "no echo within \(stallLimit) s (block \(sequence))" }
                    continue
                }
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0 {
                    received += buffer[0..<n]
                } else if n == 0 {
                    failure = "peer closed the connection"
                } else if errno != EAGAIN && errno != EINTR {
                    failure = "recv: \(String(cString: strerror(errno)))"
                }
            }
            let elapsed = Date().timeIntervalSince(started)
            let outcome = failure ?? (received == block ? nil : "echo of block \(sequence) differs")
            let fatal = failure != nil
            state.withLock { state in
                state.tally.slowestRoundTrip = max(state.tally.slowestRoundTrip, elapsed)
                if let outcome {
                    state.tally.errors += 1
                    if fatal { state.tally.broken = outcome }
                } else {
                    state.tally.rounds += 1
                    state.tally.bytes += block.count
                }
            }
            if fatal { return }
            usleep(useconds_t(pause * 1_000_000))
        }
    }
}
