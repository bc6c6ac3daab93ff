import AgentAPI
import CGlibc
import DatapathCore
import Dispatch
import FoundationEssentials
import Glibc
import Netlink
import Policy

/// The start-up check that HTTP rules are enforced on this kernel: in a private network namespace, a server on a
/// loopback address of its own gets an HTTP rule through the real maps, one request that the rule allows must
/// reach the server and one it does not allow must come back as the 403 and never reach it. A failure names its
/// step; the caller refuses HTTP rules while it stands (rather than letting them pass unchecked).
public enum L7SelfTest {
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// The step that failed, e.g. "denied request answered".
        public var step: String
        public var detail: String
        public var description: String { "L7 self-test failed at \(step): \(detail)" }
    }

    /// The endpoint id the test entry is written under: no endpoint gets it (ids are 16 bits, as Cilium's).
    public static let endpointID: UInt32 = 0xffff_fff0
    static let allowedPath = "/nodeagent-l7-selftest/allowed"

    /// Runs the test on a thread of its own (which alone enters the namespace); nil when it passed. The agent's
    /// own sockets must be under the cgroup root the sockops program is attached to, as they are under the
    /// default root (the whole hierarchy).
    public static func run(_ datapath: L7Datapath, timeout: Double = 2) -> Failure? {
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        BackgroundThread.start(name: "l7-self-test") {
            defer { done.signal() }
            do { try check(datapath, timeout: timeout) } catch let failure as Failure {
                box.failure = failure
            } catch {
                box.failure = Failure(step: "setup", detail: "\(error)")
            }
        }
        done.wait()
        return box.failure
    }

    private final class Box: @unchecked Sendable {  // written by the test thread before it signals
        var failure: Failure?
    }

    private typealias UnshareFunction = @convention(c) (Int32) -> Int32

    private static func check(_ datapath: L7Datapath, timeout: Double) throws {
        // unshare is declared only under _GNU_SOURCE, which the Glibc module does not define: looked up at run
        // time. CLONE_NEWNET from <linux/sched.h>. The namespace goes when the thread ends.
        guard let symbol = dlsym(nil, "unshare") else { throw Failure(step: "namespace", detail: "no unshare") }
        let unshare = unsafeBitCast(symbol, to: UnshareFunction.self)
        guard unshare(0x4000_0000) == 0 else { throw Failure(step: "namespace", detail: errorText()) }
        do { try NetlinkSocket().setUp("lo") } catch { throw Failure(step: "loopback", detail: "\(error)") }

        // A loopback address and port of the test's own, so the entry enrolls nobody else's server meanwhile.
        let address = IPAddress(
            family: .ipv4,
            bytes: [127, UInt8.random(in: 1...254), UInt8.random(in: 1...254), UInt8.random(in: 1...254)])
        let port = UInt16.random(in: 20000...60000)
        let server = try Socket.listening(on: address, port: port)
        let rule = HTTPRuleProgram(
            ruleID: 0, method: ByteDFA(literal: Array("GET".utf8)), path: ByteDFA(literal: Array(allowedPath.utf8)))
        let policy = HTTPPortPolicy(port: port, rules: [rule], peers: [0: .rules(1)])
        do {
            try datapath.apply(endpoint: endpointID, identity: 0, addresses: [address], ports: [policy])
        } catch { throw Failure(step: "enrolling the test server", detail: "\(error)") }
        defer { try? datapath.remove(endpoint: endpointID) }

        let allowed = "GET \(allowedPath) HTTP/1.1\r\nHost: selftest\r\nUser-Agent: nodeagent-selftest\r\n\r\n"
        let first = try Socket.connected(to: address, port: port, timeout: timeout)
        let accepted = try server.accept(timeout: timeout, step: "allowed request connection")
        try first.send(allowed)
        guard try accepted.receive(step: "allowed request", timeout: timeout) == allowed else {
            throw Failure(step: "allowed request", detail: "the server read something else")
        }

        let denied =
            "GET /nodeagent-l7-selftest/denied HTTP/1.1\r\nHost: selftest\r\nUser-Agent: nodeagent-selftest\r\n\r\n"
        // Accepted before it sends: an answer redirected to a socket still in the accept queue is lost (it has no
        // struct socket to send through yet), as it would be for any server slow to accept.
        let second = try Socket.connected(to: address, port: port, timeout: timeout)
        let hidden = try server.accept(timeout: timeout, step: "denied request connection")
        try second.send(denied)
        let answer = try second.receive(step: "denied request answered", timeout: timeout)
        guard answer.hasPrefix("HTTP/1.1 403 Forbidden\r\n"), answer.hasSuffix("Access denied\r\n") else {
            throw Failure(step: "denied request answered", detail: "the client read \(answer.debugDescription)")
        }
        // The verdict ran before the answer left: a request it had let through would be waiting by now.
        if let leaked = try? hidden.receive(step: "denied request hidden", timeout: 0.1), !leaked.isEmpty {
            throw Failure(step: "denied request hidden", detail: "the server read \(leaked.debugDescription)")
        }
    }

    /// A TCP socket of the test, closed with it.
    private final class Socket {
        let fd: Int32

        private init(_ fd: Int32) { self.fd = fd }
        deinit { close(fd) }

        static func listening(on address: IPAddress, port: UInt16) throws -> Socket {
            let socket = try Socket(make(step: "listening"))
            var one: Int32 = 1
            setsockopt(socket.fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var sin = sockaddr(address, port)
            let rc = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                    bind(socket.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard rc == 0, listen(socket.fd, 4) == 0 else {
                throw Failure(step: "listening", detail: errorText())
            }
            return socket
        }

        static func connected(to address: IPAddress, port: UInt16, timeout: Double) throws -> Socket {
            let socket = try Socket(make(step: "connecting"))
            try socket.setTimeout(timeout)
            var sin = sockaddr(address, port)
            let rc = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                    connect(socket.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard rc == 0 else { throw Failure(step: "connecting", detail: errorText()) }
            return socket
        }

        func accept(timeout: Double, step: String) throws -> Socket {
            try setTimeout(timeout)
            let accepted = Glibc.accept(fd, nil, nil)
            guard accepted >= 0 else { throw Failure(step: step, detail: "accept: \(errorText())") }
            let socket = Socket(accepted)
            try socket.setTimeout(timeout)
            return socket
        }

        func send(_ text: String) throws {
            let bytes = Array(text.utf8)
            guard Glibc.send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else {
                throw Failure(step: "sending", detail: errorText())
            }
        }

        /// What one read returns (the requests and the answer fit in one segment), waiting up to `timeout`.
        /// An enrolled socket can fail a read with EAGAIN although poll said readable (tcp_bpf_recvmsg_parser
        /// wakes on bytes strparser has yet to frame), so reads are retried until the deadline.
        func receive(step: String, timeout: Double) throws -> String {
            let deadline = Date().addingTimeInterval(timeout)
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let left = deadline.timeIntervalSinceNow
                guard left > 0 else { throw Failure(step: step, detail: "nothing arrived in \(timeout) s") }
                var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&entry, 1, Int32(left * 1000) + 1)
                let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if count >= 0 { return String(decoding: buffer.prefix(count), as: UTF8.self) }
                guard errno == EAGAIN || errno == EINTR else {
                    throw Failure(step: step, detail: "recv: \(errorText())")
                }
            }
        }

        private func setTimeout(_ seconds: Double) throws {
            var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
            for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
                guard setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                    throw Failure(step: "socket timeout", detail: errorText())
                }
            }
        }

        private static func make(step: String) throws -> Int32 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Failure(step: step, detail: errorText()) }
            return fd
        }

        private static func sockaddr(_ address: IPAddress, _ port: UInt16) -> sockaddr_in {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyBytes(from: address.bytes) }
            return sin
        }
    }
}

private func errorText() -> String { String(cString: strerror(errno)) }
