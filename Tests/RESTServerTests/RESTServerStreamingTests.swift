import AgentAPI
import Foundation
import RESTServer
import Synchronization
import XCTest

/// Sets a flag when released, so a test can see that the server dropped a stream and what it captured.
private final class ReleaseWitness: Sendable {
    let released: Atomic<Bool>
    private let onRelease: @Sendable () -> Void

    init(_ onRelease: @escaping @Sendable () -> Void) {
        self.released = Atomic(false)
        self.onRelease = onRelease
    }

    deinit { onRelease() }
}

/// Counts how often the server pulled a stream, and whether the stream has been released.
private final class StreamProbe: Sendable {
    let pulls = Atomic<Int>(0)
    let released = Atomic<Bool>(false)

    func waitUntilReleased(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if released.load(ordering: .acquiring) { return true }
            usleep(10_000)
        }
        return released.load(ordering: .acquiring)
    }
}

final class RESTServerStreamingTests: XCTestCase {
    /// A stream that hands out `items` in order (an empty item means "nothing yet"), then ends.
    private static func scripted(_ items: [String]) -> @Sendable () -> [UInt8]? {
        let remaining = Mutex(items.map { Array($0.utf8) })
        return {
            remaining.withLock { items in items.isEmpty ? nil : items.removeFirst() }
        }
    }

    /// A stream that never ends: "tick N\n" every `every` (or never, when nil), empty otherwise.
    private static func follower(_ probe: StreamProbe, every: Duration?) -> @Sendable () -> [UInt8]? {
        let witness = ReleaseWitness { probe.released.store(true, ordering: .releasing) }
        let last = Mutex(ContinuousClock.now - .seconds(1))
        return {
            _ = witness  // captured so its release shows the closure was dropped
            let pull = probe.pulls.wrappingAdd(1, ordering: .relaxed).newValue
            guard let every else { return [] }
            let due = last.withLock { last in
                guard ContinuousClock.now - last >= every else { return false }
                last = ContinuousClock.now
                return true
            }
            return due ? Array("tick \(pull)\n".utf8) : []
        }
    }

    func testStreamDeliversChunksAndEnds() throws {
        let routes = [
            Route.get("/v1/stream") { _ in
                .streaming(
                    contentType: "text/plain", next: Self.scripted(["first\n", "", "", "second\n", "", "third\n"]))
            }
        ]
        let server = try TestServer(routes: routes, options: RESTServer.Options(streamPollInterval: .milliseconds(10)))
        defer { server.stop() }

        let result = try curl(server.path, "GET", "/v1/stream")
        XCTAssertEqual(result.status, 200)
        XCTAssertEqual(result.contentType, "text/plain")
        XCTAssertEqual(result.text, "first\nsecond\nthird\n")

        let connection = try RawHTTPConnection(path: server.path)
        try connection.send("GET /v1/stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let head = try connection.readHead()
        XCTAssertEqual(head.headers["transfer-encoding"], "chunked")
        var chunks: [String] = []
        while let chunk = try connection.readChunk() { chunks.append(String(decoding: chunk, as: UTF8.self)) }
        XCTAssertEqual(chunks.joined(), "first\nsecond\nthird\n")
        // The connection is still usable after a stream ends.
        XCTAssertEqual(try connection.request("GET", "/v1/stream").text, "first\nsecond\nthird\n")
    }

    func testChunkLargerThanTheServerBufferArrivesWhole() throws {
        let big = String((0..<100_000).map { Character(UnicodeScalar(UInt8(97 + $0 % 26))) })
        let routes = [Route.get("/v1/big") { _ in .streaming(next: Self.scripted([big, "end"])) }]
        let server = try TestServer(routes: routes)
        defer { server.stop() }
        XCTAssertEqual(try curl(server.path, "GET", "/v1/big").text, big + "end")
    }

    func testFollowerStopsBeingServedWhenTheClientGoesAway() throws {
        let probe = StreamProbe()
        let routes = [
            Route.get("/v1/follow") { _ in .streaming(next: Self.follower(probe, every: .milliseconds(20))) }
        ]
        let server = try TestServer(routes: routes, options: RESTServer.Options(streamPollInterval: .milliseconds(10)))
        defer { server.stop() }

        let connection = try RawHTTPConnection(path: server.path)
        try connection.send("GET /v1/follow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        XCTAssertEqual(try connection.readHead().status, 200)
        let first = try XCTUnwrap(connection.readChunk())
        let second = try XCTUnwrap(connection.readChunk())
        XCTAssertTrue(String(decoding: first, as: UTF8.self).hasPrefix("tick "))
        XCTAssertNotEqual(first, second)
        connection.close()

        XCTAssertTrue(probe.waitUntilReleased(timeout: .seconds(5)), "the stream is released after the client left")
        let pulls = probe.pulls.load(ordering: .relaxed)
        usleep(300_000)
        XCTAssertEqual(probe.pulls.load(ordering: .relaxed), pulls, "nobody pulls a released stream")
    }

    func testSilentFollowerIsReleasedWhenTheClientGoesAway() throws {
        let probe = StreamProbe()
        let routes = [Route.get("/v1/follow") { _ in .streaming(next: Self.follower(probe, every: nil)) }]
        let server = try TestServer(routes: routes, options: RESTServer.Options(streamPollInterval: .milliseconds(10)))
        defer { server.stop() }

        let connection = try RawHTTPConnection(path: server.path)
        try connection.send("GET /v1/follow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        XCTAssertEqual(try connection.readHead().status, 200)
        usleep(100_000)
        XCTAssertGreaterThan(probe.pulls.load(ordering: .relaxed), 1, "the stream is polled while the client waits")
        connection.close()
        XCTAssertTrue(probe.waitUntilReleased(timeout: .seconds(5)))
    }

    func testSilentFollowersDoNotStallOtherRequests() throws {
        let probes = (0..<3).map { _ in StreamProbe() }
        let index = Atomic<Int>(0)
        let routes =
            TestRoutes.basic + [
                Route.get("/v1/follow") { _ in
                    let probe = probes[index.wrappingAdd(1, ordering: .relaxed).oldValue % probes.count]
                    return .streaming(next: Self.follower(probe, every: nil))
                }
            ]
        // One worker thread: if a waiting stream blocked it, nothing else would be served.
        let server = try TestServer(routes: routes, options: RESTServer.Options(threads: 1))
        defer { server.stop() }
        var followers: [RawHTTPConnection] = []
        for _ in probes {
            let connection = try RawHTTPConnection(path: server.path)
            try connection.send("GET /v1/follow HTTP/1.1\r\nHost: localhost\r\n\r\n")
            XCTAssertEqual(try connection.readHead().status, 200)
            followers.append(connection)
        }
        let client = try RawHTTPConnection(path: server.path)
        let started = ContinuousClock.now
        for _ in 0..<20 { XCTAssertEqual(try client.request("GET", "/v1/hello").status, 200) }
        XCTAssertLessThan(ContinuousClock.now - started, .milliseconds(500))
        followers.forEach { $0.close() }
    }

    func testStopEndsActiveFollowersPromptly() throws {
        let probe = StreamProbe()
        let routes = [Route.get("/v1/follow") { _ in .streaming(next: Self.follower(probe, every: nil)) }]
        let server = try TestServer(routes: routes)
        defer { server.stop() }
        let connection = try RawHTTPConnection(path: server.path)
        try connection.send("GET /v1/follow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        XCTAssertEqual(try connection.readHead().status, 200)
        usleep(50_000)

        let started = ContinuousClock.now
        server.server.stop()
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(2))
        XCTAssertTrue(probe.waitUntilReleased(timeout: .seconds(2)))
        XCTAssertNil(try connection.readChunk(), "the stream ends cleanly")
        XCTAssertTrue(connection.serverClosed(within: 2), "and the connection is closed")
    }

    func testSilentFollowerOutlivesTheIdleTimeoutButIdleConnectionsDoNot() throws {
        let probe = StreamProbe()
        let routes =
            TestRoutes.basic + [
                Route.get("/v1/follow") { _ in .streaming(next: Self.follower(probe, every: nil)) }
            ]
        let server = try TestServer(routes: routes, options: RESTServer.Options(connectionTimeoutSeconds: 1))
        defer { server.stop() }
        let follower = try RawHTTPConnection(path: server.path)
        try follower.send("GET /v1/follow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        XCTAssertEqual(try follower.readHead().status, 200)
        let idle = try RawHTTPConnection(path: server.path)
        XCTAssertEqual(try idle.request("GET", "/v1/hello").status, 200)

        XCTAssertFalse(follower.serverClosed(within: 2.5), "a follower waiting for events is kept")
        XCTAssertTrue(idle.serverClosed(within: 0.5), "an idle keep-alive connection times out")
        XCTAssertFalse(probe.released.load(ordering: .acquiring))
    }
}
