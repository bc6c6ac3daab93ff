import DatapathCore
import XCTest

@testable import IPAMClusterPool

final class RoutesTests: XCTestCase {
    private func router(_ ipam: IPAM) -> Router {
        Router(routes: IPAMRoutes(service: { ipam }).routes)
    }

    private func send(
        _ router: Router, _ method: HTTPMethod, _ path: String, query: [String: String] = [:],
        headers: [String: String] = [:]
    ) throws -> (Int, JSON) {
        let response = router.route(APIRequest(method: method, path: path, query: query, headers: headers))
        return (response.status, try JSON.parse(response.body))
    }

    func testAllocationAnswersInCiliumsShape() throws {
        let ipam = try readyIPAM(
            #"{"cluster-pool-ipv4-cidr": ["10.0.0.0/16"], "node-index": 1, "pod-cidr-ipv6": "fd00:1::/120"}"#,
            directory: try temporaryDirectory(self))
        let api = router(ipam)
        let (status, body) = try send(
            api, .POST, "/v1/ipam", query: ["family": "ipv4", "owner": "web/frontend-0"],
            headers: ["expiration": "true"])
        XCTAssertEqual(status, 201)
        XCTAssertEqual(body["address"]?["ipv4"], "10.0.1.2")
        let uuid = try XCTUnwrap(body["address"]?["ipv4-expiration-uuid"]?.stringValue)
        XCTAssertEqual(body["ipv4"]?["expiration-uuid"]?.stringValue, uuid)
        XCTAssertEqual(body["ipv4"]?["ip"], "10.0.1.2")
        XCTAssertEqual(body["ipv4"]?["gateway"], "10.0.1.1")
        XCTAssertEqual(body["ipv4"]?["cidrs"], ["10.0.0.0/16"])
        XCTAssertEqual(
            body["host-addressing"]?["ipv4"], ["enabled": true, "ip": "10.0.1.1", "alloc-range": "10.0.1.0/24"])
        XCTAssertNil(body["ipv6"], "only the family asked for")

        let (bothStatus, both) = try send(api, .POST, "/v1/ipam", query: ["owner": "web/frontend-1"])
        XCTAssertEqual(bothStatus, 201)
        XCTAssertEqual(both["address"], ["ipv4": "10.0.1.3", "ipv6": "fd00:1::2"], "without family: every family")
        XCTAssertEqual(both["ipv6"]?["gateway"], "fd00:1::1")

        let (_, listing) = try send(api, .GET, "/v1/ipam")
        XCTAssertEqual(listing["ipv4"]?["allocated"], 2)
        XCTAssertEqual(listing["ipv4"]?["free"], 251)
        XCTAssertEqual(listing["ipv6"]?["free"], 253)
        let first = try XCTUnwrap(listing["allocations"]?[0])
        XCTAssertEqual(first["ip"], "10.0.1.2")
        XCTAssertEqual(first["owner"], "web/frontend-0")
        XCTAssertEqual(first["expires-in-seconds"], 600)
        XCTAssertNotNil(first["expires"]?.stringValue)
        XCTAssertNil(listing["allocations"]?[1]?["expires"])
    }

    /// The CNI plugin allocates for a container id and records namespace/pod beside it.
    func testThePodAttributeIsRecordedListedAndValidated() throws {
        let api = router(try readyIPAM(v4Node, directory: try temporaryDirectory(self)))
        let (status, body) = try send(
            api, .POST, "/v1/ipam", query: ["family": "ipv4", "owner": "3f1c9a0b", "pod": "web/frontend-0"])
        XCTAssertEqual(status, 201)
        XCTAssertEqual(body["ipv4"]?["owner"], "3f1c9a0b")
        XCTAssertEqual(body["ipv4"]?["pod"], "web/frontend-0")
        let (_, listing) = try send(api, .GET, "/v1/ipam")
        XCTAssertEqual(listing["allocations"]?[0]?["owner"], "3f1c9a0b")
        XCTAssertEqual(listing["allocations"]?[0]?["pod"], "web/frontend-0")
        let (claimed, claim) = try send(api, .POST, "/v1/ipam/10.0.1.9", query: ["owner": "77aa", "pod": "a/b"])
        XCTAssertEqual(claimed, 201)
        XCTAssertEqual(claim["ipv4"]?["pod"], "a/b")

        let (bad, error) = try send(api, .POST, "/v1/ipam", query: ["owner": "x", "pod": "a\u{7}b"])
        XCTAssertEqual(bad, 400)
        XCTAssertEqual(error["error"]?["field"], "pod")
        let (long, tooLong) = try send(api, .POST, "/v1/ipam", query: ["pod": String(repeating: "p", count: 257)])
        XCTAssertEqual(long, 400)
        XCTAssertEqual(tooLong["error"]?["field"], "pod")
        XCTAssertEqual(try send(api, .GET, "/v1/ipam").1["allocations"]?.arrayValue?.count, 2, "nothing allocated")
    }

    func testClaimReleaseAndLookup() throws {
        let api = router(try readyIPAM(v4Node, directory: try temporaryDirectory(self)))
        XCTAssertEqual(try send(api, .POST, "/v1/ipam/10.0.1.9", query: ["owner": "a/b"]).0, 201)
        XCTAssertEqual(try send(api, .POST, "/v1/ipam/10.0.1.9", query: ["owner": "a/b"]).0, 200)
        let (conflict, error) = try send(api, .POST, "/v1/ipam/10.0.1.9", query: ["owner": "c/d"])
        XCTAssertEqual(conflict, 409)
        XCTAssertEqual(error["error"]?["code"], "conflict")
        XCTAssertEqual(try send(api, .POST, "/v1/ipam/10.0.1.0").0, 400)
        XCTAssertEqual(try send(api, .GET, "/v1/ipam/10.0.1.9").1["owner"], "a/b")
        XCTAssertEqual(try send(api, .GET, "/v1/ipam/10.0.1.10").0, 404)
        XCTAssertEqual(try send(api, .GET, "/v1/ipam/nonsense").1["error"]?["field"], "ip")

        let (deleted, answer) = try send(api, .DELETE, "/v1/ipam/10.0.1.9")
        XCTAssertEqual(deleted, 200)
        XCTAssertEqual(answer, ["ip": "10.0.1.9", "released": true, "owner": "a/b"])
        let (again, second) = try send(api, .DELETE, "/v1/ipam/10.0.1.9")
        XCTAssertEqual(again, 200)
        XCTAssertEqual(second, ["ip": "10.0.1.9", "released": false])
    }

    func testGarbageCollectionRoute() throws {
        let ipam = try readyIPAM(v4Node, directory: try temporaryDirectory(self))
        let api = router(ipam)
        _ = try send(api, .POST, "/v1/ipam/10.0.1.20", query: ["owner": "ns/p"])
        ipam.handle(.endpointAdded(id: 2, ifindex: 3, addresses: ["10.0.1.20"]))
        XCTAssertEqual(try send(api, .POST, "/v1/ipam/gc", query: ["dry-run": "true"]).1["orphans"], [])
        ipam.handle(.endpointRemoved(id: 2, addresses: ["10.0.1.20"]))
        let (_, dry) = try send(api, .POST, "/v1/ipam/gc", query: ["dry-run": "true"])
        XCTAssertEqual(dry["orphans"]?[0]?["ip"], "10.0.1.20")
        XCTAssertEqual(dry["orphans"]?[0]?["endpoint"], 2)
        XCTAssertEqual(dry["released"], 0)
        let (_, real) = try send(api, .POST, "/v1/ipam/gc")
        XCTAssertEqual(real["released"], 1)
        XCTAssertEqual(real["dry-run"], false)
        XCTAssertEqual(try send(api, .GET, "/v1/ipam").1["allocations"], [])
    }

    func testBadQueriesAreRejectedNamingTheParameter() throws {
        let api = router(try readyIPAM(v4Node, directory: try temporaryDirectory(self)))
        let cases: [([String: String], [String: String], String)] = [
            (["famliy": "ipv4"], [:], "famliy"),
            (["family": "ipx"], [:], "family"),
            (["family": "ipv6"], [:], "family"),
            (["pool": "blue"], [:], "pool"),
            (["owner": "a\u{7}b"], [:], "owner"),
            ([:], ["expiration": "maybe"], "expiration"),
        ]
        for (query, headers, field) in cases {
            let (status, body) = try send(api, .POST, "/v1/ipam", query: query, headers: headers)
            XCTAssertEqual(status, 400, "\(query) \(headers)")
            XCTAssertEqual(body["error"]?["field"]?.stringValue, field, "\(query) \(headers)")
        }
        XCTAssertEqual(try send(api, .POST, "/v1/ipam", query: ["pool": "default"]).0, 201)
    }

    func testIdlePluginAnswers503() throws {
        let plugin = IPAMClusterPoolPlugin()
        try plugin.configure([:])
        let api = Router(routes: plugin.routes)
        for (method, path) in [(HTTPMethod.GET, "/v1/ipam"), (.POST, "/v1/ipam"), (.DELETE, "/v1/ipam/10.0.0.5")] {
            let response = api.route(APIRequest(method: method, path: path))
            XCTAssertEqual(response.status, 503, path)
            let message = try JSON.parse(response.body)["error"]?["message"]?.stringValue ?? ""
            XCTAssertTrue(message.hasPrefix("IPAM is not configured: set plugins.ipam.cluster-pool-ipv4-cidr"), message)
        }
    }
}
