import AgentAPI
import Dispatch
import Foundation
import HTTPClient
import NodeCtlKit
import XCTest

/// The HTTP/1.1 client against a scripted server on a real Unix socket.
final class NodeCtlKitHTTPClientTests: XCTestCase {
    private func client(_ server: NodeCtlKitFakeServer, timeout: Duration? = .seconds(5)) -> UnixHTTPClient {
        UnixHTTPClient(socketPath: server.path, connectTimeout: .seconds(2), responseTimeout: timeout)
    }

    func testContentLengthResponseSplitAcrossManyReads() throws {
        let body = #"{"status":"ok","version":"0.1.0"}"#
        let server = try NodeCtlKitFakeServer(
            response: NodeCtlKitFakeServer.jsonResponse(body) + "trailing garbage after the body", pieces: 9)
        defer { server.stop() }

        let response = try client(server).send(HTTPRequest(method: "GET", target: "/v1/healthz"))

        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.head.reason, "OK")
        XCTAssertEqual(response.headers["content-type"], "application/json")
        XCTAssertEqual(String(decoding: response.body, as: UTF8.self), body)
    }

    func testChunkedResponseIsDechunked() throws {
        let raw =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;ext=1\r\nhello\r\n" + "1\r\n \r\n" + "10\r\n0123456789abcdef\r\n" + "0\r\nX-Trailer: 1\r\n\r\n"
        let server = try NodeCtlKitFakeServer(response: raw, pieces: 13)
        defer { server.stop() }

        let response = try client(server).send(HTTPRequest(method: "GET", target: "/v1/map"))

        XCTAssertEqual(String(decoding: response.body, as: UTF8.self), "hello 0123456789abcdef")
        XCTAssertEqual(response.headers["transfer-encoding"], "chunked")
    }

    func testBodyWithoutLengthEndsWithTheConnection() throws {
        let server = try NodeCtlKitFakeServer(response: "HTTP/1.1 200 OK\r\n\r\n[1,2,3]", pieces: 3)
        defer { server.stop() }

        let response = try client(server).send(HTTPRequest(method: "GET", target: "/v1/endpoint"))

        XCTAssertEqual(String(decoding: response.body, as: UTF8.self), "[1,2,3]")
    }

    func testRequestCarriesHostContentTypeAndLength() throws {
        let server = try NodeCtlKitFakeServer(response: NodeCtlKitFakeServer.jsonResponse("{}"))
        defer { server.stop() }
        let body = Array(#"{"log-level":"debug"}"#.utf8)

        _ = try client(server).send(HTTPRequest(method: "PATCH", target: "/v1/config", body: body))

        let request = try XCTUnwrap(server.requests.first)
        XCTAssertEqual(request.method, "PATCH")
        XCTAssertEqual(request.target, "/v1/config")
        XCTAssertEqual(request.headers["host"], "localhost")
        XCTAssertEqual(request.headers["content-type"], "application/json")
        XCTAssertEqual(request.headers["content-length"], String(body.count))
        XCTAssertEqual(request.body, body)
    }

    func testTruncatedBodyIsAnError() throws {
        let server = try NodeCtlKitFakeServer(response: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        defer { server.stop() }

        XCTAssertThrowsError(try client(server).send(HTTPRequest(method: "GET", target: "/"))) { error in
            XCTAssertEqual(
                error as? ClientError, .malformedResponse("transfer closed with 7 bytes remaining to read"))
        }
    }

    func testGarbageStatusLineIsAnError() throws {
        let server = try NodeCtlKitFakeServer(response: "SSH-2.0-OpenSSH\r\n\r\n")
        defer { server.stop() }

        XCTAssertThrowsError(try client(server).send(HTTPRequest(method: "GET", target: "/"))) { error in
            XCTAssertEqual(error as? ClientError, .malformedResponse("Received HTTP/0.9 when not allowed"))
        }
    }

    func testSilentServerTimesOut() throws {
        let server = try NodeCtlKitFakeServer { _ in [.pause(milliseconds: 1500)] }
        defer { server.stop() }

        let started = Date()
        XCTAssertThrowsError(
            try client(server, timeout: .milliseconds(200)).send(HTTPRequest(method: "GET", target: "/"))
        ) { error in
            XCTAssertEqual(error as? ClientError, .timeout(path: server.path, seconds: 0.2))
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.2)
    }

    // MARK: Not running

    func testMissingSocketSaysTheAgentIsNotRunning() {
        let path = "/tmp/nodectl-test-missing-\(getpid()).sock"
        let client = UnixHTTPClient(socketPath: path)

        XCTAssertThrowsError(try client.send(HTTPRequest(method: "GET", target: "/v1/healthz"))) { error in
            XCTAssertEqual(error as? ClientError, .notRunning(path: path, reason: "No such file or directory"))
            XCTAssertEqual(
                "\(error)",
                "cannot connect to nodeagent at \(path): No such file or directory (is the agent running?)")
        }
    }

    func testSocketFileWithoutListenerIsRefused() throws {
        // A server that stopped leaves no listener; simulate with a bound but never-listening socket.
        let path = "/tmp/nodectl-test-refused-\(getpid()).sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer {
            close(fd)
            unlink(path)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        XCTAssertEqual(rc, 0)

        XCTAssertThrowsError(try UnixHTTPClient(socketPath: path).send(HTTPRequest(method: "GET", target: "/"))) {
            XCTAssertEqual($0 as? ClientError, .notRunning(path: path, reason: "Connection refused"))
        }
    }

    func testOverlongSocketPathIsRejectedBeforeConnecting() {
        let path = "/tmp/" + String(repeating: "x", count: 120)
        XCTAssertThrowsError(try UnixHTTPClient(socketPath: path).send(HTTPRequest(method: "GET", target: "/"))) {
            XCTAssertEqual(
                $0 as? ClientError, .invalidRequest("socket path \(path) is 125 bytes long; the limit is 107"))
        }
    }

    // MARK: Streaming

    func testStreamDeliversLinesAsTheyArrive() throws {
        let firstLineSeen = DispatchSemaphore(value: 0)
        let server = try NodeCtlKitFakeServer { _ in
            [
                .send(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)),
                // The first line, then a line split across two chunks.
                .send(Array(NodeCtlKitFakeServer.chunk("{\"n\":1}\n{\"n\":2,").utf8)),
                // Only continue once the client has handed out line 1: proof it did not wait for the end.
                .wait({ firstLineSeen.wait(timeout: .now() + 5) == .success }),
                .send(Array(NodeCtlKitFakeServer.chunk("\"x\":true}\n").utf8)),
                .send(Array((NodeCtlKitFakeServer.chunk("{\"n\":3}\n") + "0\r\n\r\n").utf8)),
            ]
        }
        defer { server.stop() }

        var lines: [String] = []
        let response = try client(server).streamLines(HTTPRequest(method: "GET", target: "/v1/observe")) { line in
            if let line {
                lines.append(line)
                if lines.count == 1 { firstLineSeen.signal() }
            }
            return .continue
        }

        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(lines, [#"{"n":1}"#, #"{"n":2,"x":true}"#, #"{"n":3}"#])
        XCTAssertEqual(server.waitResults, [true])
    }

    func testCallerCanStopAnEndlessStream() throws {
        let server = try NodeCtlKitFakeServer { _ in
            [
                .send(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)),
                .sendUntilClosed(Array(NodeCtlKitFakeServer.chunk("event\n").utf8), intervalMilliseconds: 5),
            ]
        }
        defer { server.stop() }

        var count = 0
        _ = try client(server).streamLines(HTTPRequest(method: "GET", target: "/v1/observe?follow=true")) { line in
            guard line != nil else { return .continue }
            count += 1
            return count == 3 ? .stop : .continue
        }
        server.stop()

        XCTAssertEqual(count, 3)
        XCTAssertTrue(server.peerClosedDuringStream)
    }

    func testIdleTicksLetTheCallerStopAQuietStream() throws {
        let server = try NodeCtlKitFakeServer { _ in
            [.send(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)), .pause(milliseconds: 1000)]
        }
        defer { server.stop() }

        var ticks = 0
        let started = Date()
        _ = try client(server).stream(HTTPRequest(method: "GET", target: "/"), idleInterval: .milliseconds(50)) {
            if case .idle = $0 { ticks += 1 }
            return ticks == 2 ? .stop : .continue
        }

        XCTAssertEqual(ticks, 2)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
    }

    func testStreamErrorAnswerIsCollectedNotStreamed() throws {
        let body = #"{"error":{"code":"not-found","message":"no such map"}}"#
        let server = try NodeCtlKitFakeServer(
            response: NodeCtlKitFakeServer.jsonResponse(body, status: 404, reason: "Not Found"), pieces: 4)
        defer { server.stop() }

        var events = 0
        let response = try client(server).stream(HTTPRequest(method: "GET", target: "/")) { _ in
            events += 1
            return .continue
        }

        XCTAssertEqual(events, 0)
        XCTAssertEqual(response.status, 404)
        XCTAssertEqual(String(decoding: response.body, as: UTF8.self), body)
    }
}

/// Framing the agent never uses but a client must read right, each from a scripted server.
final class NodeCtlKitResponseFramingTests: XCTestCase {
    private func send(_ raw: String, method: String = "GET") throws -> HTTPResponse {
        let server = try NodeCtlKitFakeServer(response: raw, pieces: 5)
        defer { server.stop() }
        let client = UnixHTTPClient(socketPath: server.path, connectTimeout: .seconds(2), responseTimeout: .seconds(5))
        return try client.send(HTTPRequest(method: method, target: "/"))
    }

    func testInterimResponseIsSkipped() throws {
        let response = try send("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
        XCTAssertEqual(response.status, 201)
        XCTAssertEqual(response.head.reason, "Created")
        XCTAssertEqual(String(decoding: response.body, as: UTF8.self), "{}")
    }

    func testHeadAnd204HaveNoBody() throws {
        let head = try send("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", method: "HEAD")
        XCTAssertEqual(head.body, [])
        let noContent = try send("HTTP/1.1 204 No Content\r\n\r\n")
        XCTAssertEqual(noContent.status, 204)
        XCTAssertEqual(noContent.body, [])
    }

    func testRepeatedHeadersAreJoined() throws {
        let response = try send("HTTP/1.1 200 OK\r\nVary: a\r\nVARY: b\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(response.headers["vary"], "a, b")
    }

    func testBadChunkSizeIsAnError() {
        XCTAssertThrowsError(try send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")) {
            XCTAssertTrue("\($0)".hasSuffix("Illegal or missing hexadecimal sequence in chunked-encoding"), "\($0)")
        }
    }

    func testChunkLongerThanDeclaredIsAnError() {
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"
        XCTAssertThrowsError(try send(raw)) {
            XCTAssertTrue("\($0)".hasSuffix("Malformed encoding found in chunked-encoding"), "\($0)")
        }
    }

    func testEndBeforeLastChunkIsAnError() {
        XCTAssertThrowsError(try send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n")) {
            guard case .malformedResponse = $0 as? ClientError else { return XCTFail("\($0)") }
        }
    }
}
