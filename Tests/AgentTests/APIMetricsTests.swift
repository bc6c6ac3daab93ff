import DatapathCore
import XCTest

@testable import Agent

/// Request metrics recorded around route handlers, labelled by the route's pattern.
final class APIMetricsTests: XCTestCase {
    func testCountsByPatternMethodAndStatusIncludingErrors() {
        let metrics = APIMetrics()
        let router = Router(
            routes: metrics.instrument([
                .get("/v1/thing/{id}") { request in
                    guard request.pathParameters["id"] == "1" else { throw AgentError.notFound("no such thing") }
                    return .json(["ok": true])
                },
                .put("/v1/thing/{id}") { _ in throw CancellationError() },
            ]))
        XCTAssertEqual(router.route(APIRequest(method: .GET, path: "/v1/thing/1")).status, 200)
        XCTAssertEqual(router.route(APIRequest(method: .GET, path: "/v1/thing/1")).status, 200)
        XCTAssertEqual(router.route(APIRequest(method: .GET, path: "/v1/thing/2")).status, 404)
        XCTAssertEqual(router.route(APIRequest(method: .PUT, path: "/v1/thing/3")).status, 500)
        XCTAssertEqual(
            router.route(APIRequest(method: .GET, path: "/v1/nothing")).status, 404, "unmatched: not counted")

        let samples = metrics.samples
        func requests(_ method: String, _ status: String) -> Double? {
            samples.first {
                $0.name == "nodeagent_api_requests_total"
                    && $0.labels == ["route": "/v1/thing/{id}", "method": method, "status": status]
            }?.value
        }
        XCTAssertEqual(requests("GET", "200"), 2)
        XCTAssertEqual(requests("GET", "404"), 1)
        XCTAssertEqual(requests("PUT", "500"), 1)
        XCTAssertEqual(samples.filter { $0.name == "nodeagent_api_requests_total" }.count, 3)

        let count = samples.first {
            $0.name == "nodeagent_api_request_duration_seconds_count"
                && $0.labels == ["route": "/v1/thing/{id}", "method": "GET"]
        }
        XCTAssertEqual(count?.value, 3)
        let text = PrometheusText.render(samples)
        XCTAssertTrue(text.contains("# TYPE nodeagent_api_request_duration_seconds histogram\n"), text)
        XCTAssertTrue(
            text.contains(
                #"nodeagent_api_request_duration_seconds_bucket{method="GET",route="/v1/thing/{id}",le="+Inf"} 3"#),
            text)
    }

    func testMetricsAddressAcceptsLoopbackAndExplicitNodeAddresses() throws {
        XCTAssertEqual(try MetricsListener.Address(parsing: "127.0.0.1:9962").description, "127.0.0.1:9962")
        XCTAssertEqual(try MetricsListener.Address(parsing: "localhost:9962").description, "127.0.0.1:9962")
        XCTAssertEqual(try MetricsListener.Address(parsing: "127.1.2.3:1").description, "127.1.2.3:1")
        XCTAssertEqual(try MetricsListener.Address(parsing: "[::1]:9962").description, "[::1]:9962")
        for (text, loopback) in [
            ("127.0.0.1:9962", true), ("[::1]:9962", true), ("0.0.0.0:9962", false), ("[::]:9962", false),
            ("10.0.0.1:80", false), ("[fd00::5]:9962", false),
        ] {
            XCTAssertEqual(try MetricsListener.Address(parsing: text).isLoopback, loopback, text)
        }
        XCTAssertEqual(try MetricsListener.Address(parsing: "0.0.0.0:9962").description, "0.0.0.0:9962")
        XCTAssertEqual(try MetricsListener.Address(parsing: "10.0.0.1:80").description, "10.0.0.1:80")
        XCTAssertEqual(try MetricsListener.Address(parsing: "[fd00::5]:9962").description, "[fd00::5]:9962")
        for (text, message) in [
            ("127.0.0.1", "metrics-address: expected host:port, got \"127.0.0.1\""),
            ("127.0.0.1:0", "metrics-address: expected a port 1-65535 in \"127.0.0.1:0\""),
            ("127.0.0.1:http", "metrics-address: expected a port 1-65535 in \"127.0.0.1:http\""),
            ("metrics.local:9962", "metrics-address: \"metrics.local\" is not an IP address (or localhost)"),
            ("[::1:9962", "metrics-address: expected [IPv6]:port, got \"[::1:9962\""),
        ] {
            XCTAssertThrowsError(try MetricsListener.Address(parsing: text), text) { error in
                XCTAssertEqual((error as? AgentError)?.message, message)
            }
        }
    }

    func testConfigFileOptions() throws {
        var config = AgentConfig()
        try config.apply(file: ["flow-buffer-size": 64, "metrics-address": "localhost:9100"])
        XCTAssertEqual(config.flowBufferSize, 64)
        XCTAssertEqual(config.metricsAddress, "127.0.0.1:9100")
        XCTAssertEqual(AgentConfig().flowBufferSize, 4096)
        XCTAssertNil(AgentConfig().metricsAddress)
        XCTAssertThrowsError(try config.apply(file: ["flow-buffer-size": 0])) {
            XCTAssertEqual(($0 as? AgentError)?.field, "flow-buffer-size")
        }
        try config.apply(file: ["metrics-address": "0.0.0.0:9100"])
        XCTAssertEqual(config.metricsAddress, "0.0.0.0:9100", "a non-loopback address is taken when configured")
        XCTAssertThrowsError(try config.apply(file: ["metrics-address": "node.local:9100"])) {
            XCTAssertEqual(($0 as? AgentError)?.field, "metrics-address")
        }
        // The verdict counters are an array the datapath indexes by (reason, direction): its size is not an option.
        XCTAssertThrowsError(try config.apply(file: ["map-sizes": ["na_metrics": 64]])) {
            XCTAssertEqual(($0 as? AgentError)?.field, "map-sizes.na_metrics")
        }
        try config.apply(file: ["map-sizes": ["na_ct": 4096]])
        XCTAssertEqual(config.mapSizes, ["na_ct": 4096])
    }
}
