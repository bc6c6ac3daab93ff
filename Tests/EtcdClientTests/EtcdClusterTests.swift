import AgentAPI
import EtcdClient
import EtcdTestSupport
import Foundation
import XCTest

final class EtcdClusterTests: EtcdTestCase {
    func testMemberList() throws {
        let members = try client.memberList()
        XCTAssertEqual(members.count, 1)
        XCTAssertEqual(members.first?.name, server.name)
        XCTAssertEqual(members.first?.clientURLs, [server.clientURL])
        XCTAssertNotEqual(members.first?.id, 0)
        let status = try client.status(endpoint: server.clientURL)
        XCTAssertEqual(status.memberID, members.first?.id)
        XCTAssertEqual(status.leader, members.first?.id)
        XCTAssertEqual(status.version, "3.4.23")
    }

    /// A closed port first in the list: every request still succeeds through the member that answers.
    func testADownEndpointDoesNotFailRequests() throws {
        let closed = "http://127.0.0.1:\(try freeLoopbackPort())"
        let client = EtcdClient(endpoints: [closed, server.clientURL], requestTimeout: .seconds(3))
        try client.put(prefix + "k", "v")
        XCTAssertEqual(try client.get(prefix + "k")?.valueString, "v")
        XCTAssertEqual(try client.memberList().count, 1)
        // A new client tries the closed port first for the watch too.
        let watcher = EtcdClient(endpoints: [closed, server.clientURL], requestTimeout: .seconds(3))
        let recorder = WatchRecorder()
        let start = try client.range(prefix: prefix).revision + 1
        let watch = recorder.watch(watcher, prefix: prefix, from: start)
        defer { watch.cancel() }
        try client.put(prefix + "k", "w")
        XCTAssertTrue(recorder.wait { $0.events.count == 1 }, "failures: \(recorder.failures)")

        let health = client.health()
        XCTAssertEqual(health.map(\.endpoint), [closed, server.clientURL])
        XCTAssertEqual(health.map(\.isHealthy), [false, true])
        XCTAssertTrue(health[0].error?.contains(closed) ?? false, "\(health[0])")
        XCTAssertNotNil(health[1].status)
    }

    func testUnreachableEndpointsFailWithinTheTimeout() throws {
        let endpoints = ["http://127.0.0.1:\(try freeLoopbackPort())", "http://127.0.0.1:\(try freeLoopbackPort())"]
        let client = EtcdClient(endpoints: endpoints, requestTimeout: .seconds(2))
        let began = ContinuousClock.now
        XCTAssertThrowsError(try client.get("/k")) { error in
            let error = error as? AgentError
            XCTAssertEqual(error?.status, 503)
            XCTAssertEqual(error?.code, .unavailable)
            let message = error?.message ?? ""
            XCTAssertTrue(message.contains("etcd"), message)
            for endpoint in endpoints { XCTAssertTrue(message.contains(endpoint), message) }
        }
        XCTAssertLessThan(ContinuousClock.now - began, .seconds(2))
        let recorder = WatchRecorder()
        let watch = recorder.watch(client, prefix: "/k", from: 0)
        defer { watch.cancel() }
        XCTAssertTrue(recorder.wait { !$0.failures.isEmpty })
        guard case .broken(let watchError) = recorder.failures.first else { return XCTFail("\(recorder.failures)") }
        XCTAssertEqual(watchError.status, 503)
        XCTAssertTrue(watchError.message.contains(endpoints[1]), watchError.message)
    }

    /// A listener whose backlog is full drops new connection attempts: the client gives it its share of the
    /// timeout to connect, then goes on to the member that answers.
    func testAnEndpointThatCannotConnectIsSkippedInTime() throws {
        let listener = try SilentListener(backlog: 0)
        defer { listener.close() }
        let fillers = try (0..<4).map { _ in try listener.connectNonBlocking() }
        defer { fillers.forEach { Glibc.close($0) } }
        let stuck = "http://127.0.0.1:\(listener.port)"
        let client = EtcdClient(endpoints: [stuck, server.clientURL], requestTimeout: .seconds(2))
        let began = ContinuousClock.now
        try client.put(prefix + "k", "v")
        let took = ContinuousClock.now - began
        XCTAssertGreaterThanOrEqual(took, .milliseconds(900), "the stuck endpoint was not tried first")
        XCTAssertLessThan(took, .seconds(2))
        XCTAssertEqual(try client.get(prefix + "k")?.valueString, "v")
    }

    /// A listener that accepts connections but never answers: the request still ends within its timeout.
    func testASilentEndpointFailsWithinTheTimeout() throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let endpoint = "http://127.0.0.1:\(listener.port)"
        let client = EtcdClient(endpoints: [endpoint], requestTimeout: .seconds(1))
        let began = ContinuousClock.now
        XCTAssertThrowsError(try client.put("/k", "v")) { error in
            let error = error as? AgentError
            XCTAssertEqual(error?.status, 503)
            XCTAssertTrue(error?.message.contains("etcd") ?? false, "\(String(describing: error))")
            XCTAssertTrue(error?.message.contains(endpoint) ?? false, "\(String(describing: error))")
        }
        let took = ContinuousClock.now - began
        XCTAssertGreaterThanOrEqual(took, .milliseconds(900))
        XCTAssertLessThan(took, .milliseconds(1500))
    }
}

/// A loopback TCP socket that listens (the kernel completes handshakes into its backlog) but never reads.
final class SilentListener {
    let fd: Int32
    let port: Int

    init(backlog: Int32 = 16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let fd = self.fd
        let ok = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(fd, generic, length) == 0 && listen(fd, backlog) == 0 && getsockname(fd, generic, &length) == 0
            }
        }
        guard ok else {
            Glibc.close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Starts a connection to the listener without waiting for it (it may never complete).
    func connectNonBlocking() throws -> Int32 {
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard client >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return client
    }

    func close() { Glibc.close(fd) }
}
