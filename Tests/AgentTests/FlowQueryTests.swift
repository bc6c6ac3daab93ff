import DatapathCore
import XCTest

@testable import Agent

/// Flows for the filter tests: frontend → backend-api on 8080 allowed, on 9090 denied, and one to the world.
enum FlowFixtures {
    static let frontend = Flow.Peer(
        ip: IPAddress("10.244.1.1")!, port: 41234, identity: 256,
        labels: ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=web-tier"], endpoint: 1, pod: "web-tier/frontend")
    static let backend = Flow.Peer(
        ip: IPAddress("10.244.1.2")!, port: 8080, identity: 257,
        labels: ["k8s:app=backend-api", "k8s:io.kubernetes.pod.namespace=api-tier"], endpoint: 2,
        pod: "api-tier/backend-api")
    static let world = Flow.Peer(
        ip: IPAddress("93.184.216.34")!, port: 443, identity: 2, labels: ["reserved:world"], name: "world")

    static func flow(
        _ verdict: Flow.Verdict, from source: Flow.Peer = frontend, to destination: Flow.Peer = backend,
        port: UInt16 = 8080, proto: UInt8 = 6, reason: UInt16 = 0, time: Int64 = 1_000_000_000_000
    ) -> Flow {
        var destination = destination
        destination.port = port
        return Flow(
            time: time, verdict: verdict, reasonCode: reason, reason: reason == 0 ? "forwarded" : "policy denied",
            direction: .egress, proto: proto, source: source, destination: destination, endpoint: 1, ifindex: 7,
            length: 74, ruleID: reason == 0 ? 3 : 0, rule: reason == 0 ? "web-tier/allow egress[0]" : nil)
    }

    static let allowed = flow(.forwarded)
    static let denied = flow(.dropped, port: 9090, reason: 133, time: 2_000_000_000_000)
    static let toWorld = flow(.dropped, to: world, port: 443, proto: 17, reason: 133, time: 3_000_000_000_000)
    static let all = [allowed, denied, toWorld]
    static let reasons: [UInt16: String] = [0: "forwarded", 133: "policy denied", 181: "policy deny rule"]
}

final class FlowQueryTests: XCTestCase {
    private func select(_ query: [String: String]) throws -> [Flow] {
        let parsed = try FlowQuery(query: query, reasons: FlowFixtures.reasons)
        return FlowFixtures.all.filter(parsed.filter.matches)
    }

    func testEmptyQueryTakesEverythingWithDefaults() throws {
        let query = try FlowQuery(query: [:], reasons: FlowFixtures.reasons)
        XCTAssertEqual(query, FlowQuery())
        XCTAssertNil(query.last)
        XCTAssertFalse(query.follow)
        XCTAssertEqual(FlowFixtures.all.filter(query.filter.matches).count, 3)
    }

    func testEachFilterSelects() throws {
        let (allowed, denied, world) = (FlowFixtures.allowed, FlowFixtures.denied, FlowFixtures.toWorld)
        XCTAssertEqual(try select(["verdict": "DROPPED"]), [denied, world])
        XCTAssertEqual(try select(["verdict": "forwarded"]), [allowed])
        XCTAssertEqual(try select(["verdict": "ALLOWED"]), [allowed])
        XCTAssertEqual(
            try select(["from-pod": "web-tier/frontend", "to-pod": "api-tier/backend-api"]), [allowed, denied])
        XCTAssertEqual(try select(["pod": "api-tier/backend-api"]), [allowed, denied])
        XCTAssertEqual(try select(["to-pod": "web-tier/frontend"]), [])
        XCTAssertEqual(try select(["from-endpoint": "1", "to-endpoint": "2"]), [allowed, denied])
        XCTAssertEqual(try select(["to-endpoint": "1"]), [])
        XCTAssertEqual(try select(["ip": "93.184.216.34"]), [world])
        XCTAssertEqual(try select(["from-ip": "10.244.1.1", "to-ip": "10.244.1.2"]), [allowed, denied])
        XCTAssertEqual(try select(["port": "9090"]), [denied])
        XCTAssertEqual(try select(["port": "41234"]), FlowFixtures.all, "either side's port")
        XCTAssertEqual(try select(["protocol": "udp"]), [world])
        XCTAssertEqual(try select(["protocol": "6"]), [allowed, denied])
        XCTAssertEqual(try select(["reason": "133"]), [denied, world])
        XCTAssertEqual(try select(["reason": "Policy Denied"]), [denied, world])
        XCTAssertEqual(try select(["since": "1970-01-01T00:33:20Z"]), [denied, world], "2000 s after the epoch")
        XCTAssertEqual(try select(["since": "2000.5"]), [world])
        XCTAssertEqual(try select(["since": "3000"]), [world], "at or after")
    }

    /// `type`, `http-method` and `http-path` select HTTP request decisions (flows with an `l7` part).
    func testHTTPRequestFiltersSelectL7Flows() throws {
        var get = FlowFixtures.flow(.forwarded, time: 4_000_000_000_000)
        get.l7 = Flow.L7(method: "GET", url: "/api/v1/public/items?x=1", host: "backend", ruleIndex: 0)
        var post = FlowFixtures.flow(.dropped, reason: 230, time: 5_000_000_000_000)
        post.l7 = Flow.L7(method: "POST", url: "/api/v1/admin/users", host: "", ruleIndex: nil)
        let all = FlowFixtures.all + [get, post]
        func select(_ query: [String: String]) throws -> [Flow] {
            all.filter(try FlowQuery(query: query, reasons: FlowFixtures.reasons).filter.matches)
        }
        XCTAssertEqual(try select(["type": "l7"]), [get, post])
        XCTAssertEqual(try select(["type": "L3-L4"]), FlowFixtures.all)
        XCTAssertEqual(try select(["http-method": "post"]), [post])
        XCTAssertEqual(try select(["http-path": "/api/v1/public/.*"]), [get], "the query is part of the path")
        XCTAssertEqual(try select(["http-path": "/api/v1/public/items"]), [], "the whole path must match")
        XCTAssertEqual(try select(["http-path": "/api/v1/(admin|public)/.*", "verdict": "DROPPED"]), [post])
        for (query, field) in [
            (["type": "l8"], "type"), (["http-method": "G T"], "http-method"), (["http-path": "(a"], "http-path"),
            (["http-path": "a(?=b)"], "http-path"),
        ] {
            XCTAssertThrowsError(try FlowQuery(query: query, reasons: FlowFixtures.reasons), "\(query)") { error in
                XCTAssertEqual((error as? AgentError)?.field, field, "\(query)")
            }
        }
    }

    func testLabelsMatchOnOneSideWithOptionalSource() throws {
        let (allowed, denied, world) = (FlowFixtures.allowed, FlowFixtures.denied, FlowFixtures.toWorld)
        XCTAssertEqual(try select(["label": "k8s:app=backend-api"]), [allowed, denied])
        XCTAssertEqual(try select(["label": "app=backend-api"]), [allowed, denied], "no source: any source")
        XCTAssertEqual(try select(["label": "any:app=backend-api"]), [allowed, denied])
        XCTAssertEqual(try select(["label": "container:app=backend-api"]), [])
        XCTAssertEqual(try select(["label": "reserved:world"]), [world])
        XCTAssertEqual(
            try select(["label": "k8s:app=frontend,k8s:io.kubernetes.pod.namespace=web-tier"]), FlowFixtures.all)
        XCTAssertEqual(
            try select(["label": "k8s:app=frontend,k8s:io.kubernetes.pod.namespace=api-tier"]), [],
            "every label of the filter on the same side")
        XCTAssertEqual(try select(["label": "k8s:app"]), [], "a label without value is not app=anything")
    }

    func testLastAndFollow() throws {
        let query = try FlowQuery(query: ["last": "5", "follow": "true"], reasons: [:])
        XCTAssertEqual(query.last, 5)
        XCTAssertTrue(query.follow)
        XCTAssertTrue(try FlowQuery(query: ["follow": ""], reasons: [:]).follow)
        XCTAssertFalse(try FlowQuery(query: ["follow": "false"], reasons: [:]).follow)
    }

    func testInvalidParametersNameThemselves() {
        let cases: [([String: String], String)] = [
            (["verdict": "MAYBE"], "verdict"), (["from-endpoint": "0"], "from-endpoint"),
            (["to-endpoint": "x"], "to-endpoint"),
            (["from-pod": "frontend"], "from-pod"), (["to-pod": "a/b/c"], "to-pod"), (["pod": "/x"], "pod"),
            (["label": "k8s:app=a,"], "label"), (["label": "a b=c"], "label"), (["ip": "10.0.0.256"], "ip"),
            (["from-ip": "x"], "from-ip"), (["to-ip": ""], "to-ip"), (["port": "65536"], "port"),
            (["port": "-1"], "port"),
            (["protocol": "carrier-pigeon"], "protocol"), (["protocol": "256"], "protocol"),
            (["reason": "gremlins"], "reason"),
            (["since": "yesterday"], "since"), (["since": "1.x"], "since"), (["last": "0"], "last"),
            (["last": "many"], "last"),
            (["follow": "perhaps"], "follow"), (["colour": "blue"], "colour"), (["Verdict": "DROPPED"], "Verdict"),
        ]
        for (query, field) in cases {
            XCTAssertThrowsError(try FlowQuery(query: query, reasons: FlowFixtures.reasons), "\(query)") { error in
                let error = error as? AgentError
                XCTAssertEqual(error?.status, 400, "\(query)")
                XCTAssertEqual(error?.field, field, "\(query): \(error?.message ?? "")")
            }
        }
    }

    func testUnknownReasonListsTheKnownOnes() {
        XCTAssertThrowsError(try FlowQuery(query: ["reason": "gremlins"], reasons: FlowFixtures.reasons)) { error in
            XCTAssertEqual(
                (error as? AgentError)?.message,
                #"reason: unknown reason "gremlins" (known: "forwarded" (0), "policy denied" (133), "#
                    + #""policy deny rule" (181))"#
            )
        }
    }

    func testFlowJSON() {
        XCTAssertEqual(
            FlowFixtures.denied.json,
            [
                "time": "1970-01-01T00:33:20.000000000Z", "verdict": "DROPPED", "reason": "policy denied",
                "reason-code": 133, "direction": "egress", "protocol": "TCP", "ip-version": 4, "endpoint": 1,
                "interface-index": 7, "length": 74, "rule-id": 0,
                "source": [
                    "ip": "10.244.1.1", "port": 41234, "identity": 256,
                    "labels": ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=web-tier"], "endpoint": 1,
                    "pod": "web-tier/frontend", "namespace": "web-tier", "pod-name": "frontend",
                    "name": "web-tier/frontend",
                ],
                "destination": [
                    "ip": "10.244.1.2", "port": 9090, "identity": 257,
                    "labels": ["k8s:app=backend-api", "k8s:io.kubernetes.pod.namespace=api-tier"], "endpoint": 2,
                    "pod": "api-tier/backend-api", "namespace": "api-tier", "pod-name": "backend-api",
                    "name": "api-tier/backend-api",
                ],
            ])
        XCTAssertEqual(FlowFixtures.allowed.json["rule"], "web-tier/allow egress[0]")
        var ping = FlowFixtures.flow(.dropped, to: FlowFixtures.world, port: 0, proto: 1, reason: 133)
        ping.source.port = 77
        XCTAssertEqual(ping.json["source"]?["icmp-id"], 77)
        XCTAssertNil(ping.json["source"]?["port"])
        XCTAssertNil(ping.json["destination"]?["icmp-id"], "the side without the identifier has none")
        XCTAssertEqual(ping.json["protocol"], "ICMP")
        XCTAssertEqual(ping.json["destination"]?["name"], "world")
    }
}
