import AgentAPI
import Foundation
import Logging
import RESTServer
import XCTest

final class RESTServerSocketTests: XCTestCase {
    private let logger = Logger(label: "rest-socket-test")

    private func fileMode(_ path: String) -> mode_t? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return info.st_mode
    }

    func testSocketModeIs0660EvenWithRestrictiveUmask() throws {
        let previous = umask(0o077)
        defer { umask(previous) }
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let mode = try XCTUnwrap(fileMode(server.path))
        XCTAssertEqual(mode & S_IFMT, S_IFSOCK)
        XCTAssertEqual(mode & 0o7777, 0o660)
    }

    func testConfiguredModeAndGroup() throws {
        let group = getgid()
        let server = try TestServer(
            routes: TestRoutes.basic, options: RESTServer.Options(socketMode: 0o600, socketGroup: "\(group)"))
        defer { server.stop() }
        var info = stat()
        XCTAssertEqual(lstat(server.path, &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o600)
        XCTAssertEqual(info.st_gid, group)
    }

    func testUnknownGroupIsRefused() throws {
        let path = temporarySocketPath()
        defer { unlink(path) }
        let server = RESTServer(
            socketPath: path, router: Router(routes: TestRoutes.basic),
            options: RESTServer.Options(socketGroup: "no-such-group-\(getpid())"), logger: logger)
        XCTAssertThrowsError(try server.start()) { error in
            XCTAssertEqual(
                (error as? AgentError)?.message, "socket-group: no group named \"no-such-group-\(getpid())\"")
        }
        XCTAssertNil(fileMode(path), "a failed start leaves no socket behind")
    }

    func testStaleSocketFileIsReplaced() throws {
        let path = temporarySocketPath("stale-")
        defer { unlink(path) }
        // A socket file nobody listens on, as a crashed agent leaves behind.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        XCTAssertEqual(bound, 0)
        close(stale)
        XCTAssertEqual(try XCTUnwrap(fileMode(path)) & S_IFMT, S_IFSOCK)

        let server = try TestServer(routes: TestRoutes.basic, path: path)
        defer { server.stop() }
        XCTAssertEqual(try curl(path, "GET", "/v1/hello").status, 200)
    }

    func testSecondServerOnALiveSocketIsRefused() throws {
        let first = try TestServer(routes: TestRoutes.basic)
        defer { first.stop() }
        let second = RESTServer(socketPath: first.path, router: Router(routes: []), logger: logger)
        XCTAssertThrowsError(try second.start()) { error in
            XCTAssertEqual((error as? AgentError)?.code, .conflict)
            XCTAssertEqual((error as? AgentError)?.message, "another agent is serving \(first.path)")
        }
        second.stop()
        // The first server is untouched and still answers.
        XCTAssertEqual(try curl(first.path, "GET", "/v1/hello").status, 200)
    }

    func testExistingNonSocketFileIsLeftAlone() throws {
        let path = temporarySocketPath("file-")
        defer { unlink(path) }
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("keep".utf8)))
        let server = RESTServer(socketPath: path, router: Router(routes: []), logger: logger)
        XCTAssertThrowsError(try server.start()) { error in
            XCTAssertEqual(
                (error as? AgentError)?.message, "\(path) exists and is not a socket; refusing to replace it")
        }
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data("keep".utf8))
    }

    func testMissingParentDirectoryIsCreated() throws {
        let directory = "/tmp/nodeagent-test-dir-\(UUID().uuidString.prefix(8))"
        let path = directory + "/run/api.sock"
        defer {
            unlink(path)
            rmdir(directory + "/run")
            rmdir(directory)
        }
        let server = try TestServer(routes: TestRoutes.basic, path: path)
        defer { server.stop() }
        XCTAssertEqual(try XCTUnwrap(fileMode(directory + "/run")) & 0o7777, 0o755)
        XCTAssertEqual(try curl(path, "GET", "/v1/hello").status, 200)
    }

    func testStopRemovesTheSocketAndCanRestart() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        server.server.stop()
        XCTAssertNil(fileMode(server.path))
        XCTAssertFalse(server.server.isRunning)
        XCTAssertThrowsError(try curl(server.path, "GET", "/v1/hello"))
        try server.server.start()
        XCTAssertEqual(try curl(server.path, "GET", "/v1/hello").status, 200)
    }

    func testStopLeavesASuccessorsSocketAlone() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        // Someone replaced our socket file (e.g. an operator started another agent after deleting it).
        unlink(server.path)
        let successor = try TestServer(routes: TestRoutes.basic, path: server.path)
        defer { successor.stop() }
        server.server.stop()
        XCTAssertEqual(try curl(server.path, "GET", "/v1/hello").status, 200)
    }

    func testSocketPathTooLongIsRefused() {
        let path = "/tmp/" + String(repeating: "x", count: 120)
        let server = RESTServer(socketPath: path, router: Router(routes: []), logger: logger)
        XCTAssertThrowsError(try server.start()) { error in
            XCTAssertEqual((error as? AgentError)?.field, "socket")
        }
    }
}
