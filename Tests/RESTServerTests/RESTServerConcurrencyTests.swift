import AgentAPI
import Foundation
import RESTServer
import Synchronization
import XCTest

final class RESTServerConcurrencyTests: XCTestCase {
    func testKeepAliveServesTwoRequestsOnOneConnection() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let connection = try RawHTTPConnection(path: server.path)
        let first = try connection.request("GET", "/v1/hello")
        XCTAssertEqual(first.status, 200)
        XCTAssertNotEqual(first.headers["connection"]?.lowercased(), "close")
        let second = try connection.request("PUT", "/v1/echo/2", body: #"{"n":2}"#)
        XCTAssertEqual(second.status, 201)
        XCTAssertEqual(try JSON.parse(second.body), ["id": "2", "body": ["n": 2]])
        let third = try connection.request("GET", "/v1/missing")
        XCTAssertEqual(third.status, 404)
        XCTAssertFalse(connection.serverClosed(within: 0.2), "the connection stays open between requests")
    }

    func testSixteenParallelClientsOfTwoHundredRequests() throws {
        let handled = Atomic<Int>(0)
        let routes =
            TestRoutes.basic + [
                .put("/v1/count/{client}/{seq}") { request in
                    handled.add(1, ordering: .relaxed)
                    let body = try request.jsonBody()
                    return .json([
                        "client": .string(try request.pathParameter("client")),
                        "seq": .string(try request.pathParameter("seq")), "body": body,
                    ])
                }
            ]
        let server = try TestServer(routes: routes)
        defer { server.stop() }

        let clients = 16
        let requests = 200
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: clients) { client in
            do {
                let connection = try RawHTTPConnection(path: server.path)
                for seq in 0..<requests {
                    let response = try connection.request(
                        "PUT", "/v1/count/\(client)/\(seq)", body: "[\(client),\(seq)]")
                    let expected: JSON = [
                        "client": .string("\(client)"), "seq": .string("\(seq)"),
                        "body": [JSON(client), JSON(seq)],
                    ]
                    guard response.status == 200, try JSON.parse(response.body) == expected else {
                        failures.withLock {
                            $0.append("client \(client) seq \(seq): \(response.status) \(response.text)")
                        }
                        return
                    }
                }
            } catch {
                failures.withLock { $0.append("client \(client): \(error)") }
            }
        }
        XCTAssertEqual(failures.withLock { $0 }, [])
        XCTAssertEqual(handled.load(ordering: .relaxed), clients * requests)
    }

    func testParallelCurlClients() throws {
        let server = try TestServer(routes: TestRoutes.basic)
        defer { server.stop() }
        let statuses = Mutex<[Int]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            let status = (try? curl(server.path, "PUT", "/v1/echo/\(index)", body: Array("{}".utf8)).status) ?? -1
            statuses.withLock { $0.append(status) }
        }
        XCTAssertEqual(statuses.withLock { $0 }, Array(repeating: 201, count: 8))
    }
}
