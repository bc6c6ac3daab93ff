import Foundation
import Glibc

/// A TCP echo server inside a namespace, on every address of it (IPv4 and IPv6), served by its own threads.
/// It records who connected, so NAT tests can see the source address the server saw. Its threads keep it alive
/// until `stop()`; the `in: topology` initializer has the topology call that.
///
/// Mutable state lives in `state` behind its lock, which is what makes the class Sendable.
final class TCPServer: @unchecked Sendable {
    let netns: String
    let port: UInt16

    private struct State {
        var stopped = false
        var peers: [String] = []
    }
    private let listener: Int32
    private let state = Locked(State())
    private let threads = DispatchGroup()

    init(netns: String, port: UInt16) throws {
        self.netns = netns
        self.port = port
        listener = try Sockets.bindAny(in: netns, port: port, type: SOCK_STREAM)
        guard listen(listener, 128) == 0 else {
            let error = NetnsError("listen on port \(port) in \(netns)")
            close(listener)
            throw error
        }
        spawn { [self] in acceptLoop() }
    }

    /// Starts a server on `host` that `topology` stops before it deletes the namespaces (an open socket would
    /// keep its namespace alive).
    convenience init(on host: some NetworkHost, port: UInt16, in topology: Topology) throws {
        try self.init(netns: host.netns, port: port)
        topology.onDestroy { [self] in stop() }
    }

    /// The source addresses of the connections accepted so far, oldest first.
    var peers: [String] { state.current.peers }

    /// Stops accepting and echoing, and closes every socket; waits for the server threads to end.
    func stop() {
        let first = state.withLock { state -> Bool in
            defer { state.stopped = true }
            return !state.stopped
        }
        guard first else { return }
        threads.wait()
        close(listener)
    }

    private var stopped: Bool { state.current.stopped }

    private func spawn(_ body: @escaping @Sendable () -> Void) {
        threads.enter()
        let group = threads
        Thread {
            body()
            group.leave()
        }.start()
    }

    private func acceptLoop() {
        while !stopped {
            // Short polls keep stop() prompt without a wake-up pipe.
            guard Sockets.wait(listener, for: Int16(POLLIN), until: Date() + 0.1) != 0 else { continue }
            guard let (fd, peerAddress) = Sockets.accept(listener) else { continue }
            let peer = peerAddress.ip
            state.withLock { $0.peers.append(peer) }
            spawn { [self] in echo(fd) }
        }
    }

    private func echo(_ fd: Int32) {
        defer {
            Sockets.abortOnClose(fd)
            close(fd)
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopped {
            guard Sockets.wait(fd, for: Int16(POLLIN), until: Date() + 0.1) != 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 || (n < 0 && errno != EAGAIN) { return }
            guard n > 0 else { continue }
            var offset = 0
            while offset < n && !stopped {
                let written = buffer[offset..<n].withUnsafeBytes {
                    send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
                }
                if written > 0 {
                    offset += written
                } else if errno == EAGAIN {
                    _ = Sockets.wait(fd, for: Int16(POLLOUT), until: Date() + 0.1)
                } else {
                    return
                }
            }
        }
    }
}

/// A UDP echo server inside a namespace, on every address of it, answering each datagram to its sender.
/// Its thread keeps it alive until `stop()`.
///
/// Mutable state lives in `state` behind its lock, which is what makes the class Sendable.
final class UDPServer: @unchecked Sendable {
    let netns: String
    let port: UInt16

    private struct State {
        var stopped = false
        var peers: [String] = []
    }
    private let fd: Int32
    private let state = Locked(State())
    private let done = DispatchSemaphore(value: 0)

    init(netns: String, port: UInt16) throws {
        self.netns = netns
        self.port = port
        fd = try Sockets.bindAny(in: netns, port: port, type: SOCK_DGRAM)
        Thread { [self] in
            serve()
            done.signal()
        }.start()
    }

    /// Starts a server on `host` that `topology` stops before it deletes the namespaces.
    convenience init(on host: some NetworkHost, port: UInt16, in topology: Topology) throws {
        try self.init(netns: host.netns, port: port)
        topology.onDestroy { [self] in stop() }
    }

    /// The source addresses of the datagrams received so far, oldest first.
    var peers: [String] { state.current.peers }

    func stop() {
        let first = state.withLock { state -> Bool in
            defer { state.stopped = true }
            return !state.stopped
        }
        guard first else { return }
        done.wait()
        close(fd)
    }

    private func serve() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !state.current.stopped {
            guard Sockets.wait(fd, for: Int16(POLLIN), until: Date() + 0.1) != 0 else { continue }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = withUnsafeMutableBytes(of: &storage) {
                recvfrom(fd, &buffer, buffer.count, 0, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
            }
            guard n >= 0 else { continue }
            let peer = SocketAddress(storage: storage, length: length)
            state.withLock { $0.peers.append(peer.ip) }
            _ = peer.withSockaddr { address, addressLength in
                sendto(fd, buffer, n, Int32(MSG_NOSIGNAL), address, addressLength)
            }
        }
    }
}
