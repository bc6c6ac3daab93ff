import ConntrackGC
import DatapathCore
import XCTest

final class RouteTests: XCTestCase {
    private var datapath: Datapath!
    private var plugin: ConntrackGCPlugin!
    private var now: UInt32 = 0

    override func setUpWithError() throws {
        datapath = try loadDatapath()
        plugin = try startedPlugin(on: datapath)
        now = MonotonicClock.seconds()
        try datapath.put(
            Flow(source: "10.0.0.3", destination: "10.0.1.1", sourcePort: 1234, destinationPort: 8080),
            ctValue(
                expiresIn: 7999, endpoint: 3, identity: 300, ruleID: 5,
                flags: UInt32(NA_CT_SEEN_NON_SYN | NA_CT_SEEN_REPLY), packets: 10, bytes: 1500, policyGeneration: 42,
                now: now))
        try datapath.put(
            Flow(
                source: "10.0.1.1", destination: "10.0.0.3", sourcePort: 5353, destinationPort: 53, proto: 17,
                egress: false),
            ctValue(expiresIn: 60, endpoint: 3, identity: 2, now: now))
        try datapath.put(
            Flow(source: "fd00::4", destination: "fd00::1:1", sourcePort: 4000, destinationPort: 443),
            ctValue(expiresIn: 30, endpoint: 4, now: now))
        try datapath.put(
            Flow(source: "fd00::4", destination: "fd00::1:2", sourcePort: 77, destinationPort: 0, proto: 58),
            ctValue(expiresIn: -3, endpoint: 4, flags: 0x100, now: now))
    }

    override func tearDown() {
        plugin?.stop()
    }

    private func list(_ query: [String: String]) throws -> [JSON] {
        let (status, body) = try call(plugin, .GET, "/v1/ct", query)
        XCTAssertEqual(status, 200, body.serialized())
        return body["entries"]?.arrayValue ?? []
    }

    private func sources(_ query: [String: String]) throws -> Set<String> {
        Set(try list(query).map { "\($0["source"]!.stringValue!):\($0["source-port"]!.intValue!)" })
    }

    func testEntryFields() throws {
        let entries = try list(["port": "8080"])
        XCTAssertEqual(entries.count, 1)
        var entry = try XCTUnwrap(entries.first?.objectValue)
        let expiresIn = try XCTUnwrap(entry.removeValue(forKey: "expires-in")?.intValue)
        XCTAssertTrue((7997...7999).contains(expiresIn), "expires-in \(expiresIn)")
        XCTAssertEqual(
            JSON.object(entry),
            [
                "source": "10.0.0.3", "source-port": 1234, "destination": "10.0.1.1", "destination-port": 8080,
                "protocol": "TCP", "direction": "egress", "endpoint": 3, "identity": 300, "rule-id": 5,
                "policy-generation": 42, "flags": ["seen-non-syn", "seen-reply"], "packets": 10, "bytes": 1500,
            ])
        let icmp = try XCTUnwrap(try list(["protocol": "icmpv6"]).first)
        XCTAssertEqual(icmp["flags"], ["0x100"])
        XCTAssertEqual(icmp["direction"], "egress")
        XCTAssertLessThan(icmp["expires-in"]?.intValue ?? 0, 0)
    }

    func testFilters() throws {
        XCTAssertEqual(try list([:]).count, 4)
        XCTAssertEqual(try sources(["endpoint": "3"]), ["10.0.0.3:1234", "10.0.1.1:5353"])
        XCTAssertEqual(try sources(["endpoint": "4"]), ["fd00::4:4000", "fd00::4:77"])
        XCTAssertEqual(try sources(["endpoint": "5"]), [])
        // An address matches either end of the tuple.
        XCTAssertEqual(try sources(["ip": "10.0.0.3"]), ["10.0.0.3:1234", "10.0.1.1:5353"])
        XCTAssertEqual(try sources(["ip": "fd00::1:1"]), ["fd00::4:4000"])
        XCTAssertEqual(try sources(["ip": "10.0.0.4"]), [])
        // A port matches either port.
        XCTAssertEqual(try sources(["port": "5353"]), ["10.0.1.1:5353"])
        XCTAssertEqual(try sources(["port": "53"]), ["10.0.1.1:5353"])
        XCTAssertEqual(try sources(["protocol": "UDP"]), ["10.0.1.1:5353"])
        XCTAssertEqual(try sources(["protocol": "tcp"]), ["10.0.0.3:1234", "fd00::4:4000"])
        XCTAssertEqual(try sources(["protocol": "6", "endpoint": "4"]), ["fd00::4:4000"])
        XCTAssertEqual(
            try sources(["protocol": "TCP", "ip": "fd00::4", "port": "443", "endpoint": "4"]), ["fd00::4:4000"])
    }

    func testPagingVisitsEveryEntryOnce() throws {
        for index in 0..<21 {
            try datapath.put(
                Flow(source: "10.0.2.\(index)", destination: "10.0.1.1", sourcePort: UInt16(2000 + index)),
                ctValue(expiresIn: 100, endpoint: 7, now: now))
        }
        var seen: [String] = []
        var cursor: String? = nil
        var pages = 0
        repeat {
            var query = ["limit": "10", "endpoint": "7"]
            query["cursor"] = cursor
            let (status, body) = try call(plugin, .GET, "/v1/ct", query)
            XCTAssertEqual(status, 200)
            let entries = body["entries"]?.arrayValue ?? []
            XCTAssertLessThanOrEqual(entries.count, 10)
            seen += entries.map { $0["source"]!.stringValue! }
            cursor = body["next-cursor"]?.stringValue
            pages += 1
        } while cursor != nil && pages < 10
        XCTAssertEqual(seen.count, 21)
        XCTAssertEqual(Set(seen), Set((0..<21).map { "10.0.2.\($0)" }))
        XCTAssertGreaterThanOrEqual(pages, 3)
    }

    func testBadParametersAre400NamingThem() throws {
        let cases: [([String: String], String)] = [
            (["endpoint": "x"], "endpoint"), (["endpoint": "-1"], "endpoint"), (["ip": "10.0.0.300"], "ip"),
            (["port": "70000"], "port"), (["protocol": "TCPX"], "protocol"), (["protocol": "256"], "protocol"),
            (["limit": "0"], "limit"), (["limit": "10001"], "limit"), (["cursor": "zz"], "cursor"),
            (["cursor": "abcd"], "cursor"), (["endpont": "3"], "endpont"),
        ]
        for (query, field) in cases {
            let (status, body) = try call(plugin, .GET, "/v1/ct", query)
            XCTAssertEqual(status, 400, "\(query)")
            XCTAssertEqual(body["error"]?["field"]?.stringValue, field, "\(query)")
            XCTAssertEqual(body["error"]?["code"], "invalid-field")
        }
    }

    func testCursorOfADeletedEntryIsAConflict() throws {
        let (_, first) = try call(plugin, .GET, "/v1/ct", ["limit": "1"])
        let cursor = try XCTUnwrap(first["next-cursor"]?.stringValue)
        XCTAssertEqual(try call(plugin, .DELETE, "/v1/ct").status, 200)
        let (status, body) = try call(plugin, .GET, "/v1/ct", ["cursor": cursor])
        XCTAssertEqual(status, 409)
        XCTAssertEqual(body["error"]?["field"], "cursor")
    }

    func testDeleteByEndpointAndAll() throws {
        let (typo, error) = try call(plugin, .DELETE, "/v1/ct", ["endpoit": "3"])
        XCTAssertEqual(typo, 400)
        XCTAssertEqual(error["error"]?["field"], "endpoit")
        XCTAssertEqual(try datapath.conntrack().entries().count, 4)

        let (status, body) = try call(plugin, .DELETE, "/v1/ct", ["endpoint": "3"])
        XCTAssertEqual(status, 200)
        XCTAssertEqual(body, ["deleted": 2])
        XCTAssertEqual(try sources([:]), ["fd00::4:4000", "fd00::4:77"])

        XCTAssertEqual(try call(plugin, .DELETE, "/v1/ct").body, ["deleted": 2])
        XCTAssertEqual(try list([:]).count, 0)
        XCTAssertEqual(try call(plugin, .DELETE, "/v1/ct").body, ["deleted": 0])
    }

    func testRoutesAnswer503WhenStopped() throws {
        plugin.stop()
        XCTAssertEqual(try call(plugin, .GET, "/v1/ct").status, 503)
        XCTAssertEqual(try call(plugin, .DELETE, "/v1/ct").status, 503)
    }

    func testMapDecoderReadsEntriesLikeTheAPI() throws {
        let map = try datapath.map("na_ct")
        let flow = Flow(source: "10.0.0.3", destination: "10.0.1.1", sourcePort: 1234, destinationPort: 8080)
        let value = try XCTUnwrap(try map.lookup(key: bytesOf(flow.key)))
        let decoder = try XCTUnwrap(datapath.decoder(forMap: "na_ct"))
        let decoded = decoder.decode(bytesOf(flow.key), value, map)
        XCTAssertEqual(
            decoded.key,
            [
                "source": "10.0.0.3", "source-port": 1234, "destination": "10.0.1.1", "destination-port": 8080,
                "protocol": "TCP", "direction": "egress",
            ])
        XCTAssertEqual(decoded.value["endpoint"], 3)
        XCTAssertEqual(decoded.value["rule-id"], 5)
        XCTAssertEqual(decoded.value["policy-generation"], 42)
        XCTAssertEqual(decoded.value["flags"], ["seen-non-syn", "seen-reply"])

        // The creation counter has a decoder of its own: na_ct's must never read its per-CPU values.
        let counter = try datapath.map("na_ct_created")
        let counterValue = try XCTUnwrap(try counter.lookup(key: [0, 0, 0, 0]))
        let counterDecoded = try XCTUnwrap(datapath.decoder(forMap: "na_ct_created")).decode(
            [0, 0, 0, 0], counterValue, counter)
        XCTAssertEqual(counterDecoded.value, ["created": 0])
    }
}
