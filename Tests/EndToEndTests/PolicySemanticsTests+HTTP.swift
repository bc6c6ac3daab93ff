import AgentAPI
import Foundation
import XCTest

/// HTTP rules through a running agent: imported, shown in the endpoint's policy, and traced request by request
/// (API and nodectl). The connection to the port stays an L4 allow; its requests are the L7 datapath's to decide.
extension PolicySemanticsTests {
    func testHTTPRulesAreShownAndTraced() throws {
        let p = try makePair(tcp: [80, 81])
        let http: JSON = [
            ["method": "GET", "path": "/public/.*"],
            ["method": "POST", "headerMatches": [["name": "X-Token", "value": "7"]]],
        ]
        _ = try p.agent.importPolicies([
            serverIngress(
                "l7",
                [
                    [
                        "fromEndpoints": fromClient,
                        "toPorts": [["ports": [["port": "80", "protocol": "TCP"]], "rules": ["http": http]]],
                    ]
                ])
        ])
        assertReachability(
            [
                Probe(from: p.client, to: p.server, port: 80, .passes),
                Probe(from: p.client, to: p.server, port: 81, .dropped),
            ], "the port with HTTP rules is allowed at L4")

        let policy = try p.agent.getJSON("/v1/endpoint/2/policy")
        let port = try XCTUnwrap(policy["http"]?.arrayValue?.first, "\(policy)")
        XCTAssertEqual(port["port"], 80)
        XCTAssertEqual(port["rules"]?.arrayValue?.map { $0["rule"] }, ["lab/l7 ingress[0]", "lab/l7 ingress[0]"])
        XCTAssertEqual(port["rules"]?[1]?["headers"], ["x-token: 7"])
        let client = try XCTUnwrap(p.agent.getJSON("/v1/endpoint/1")["identity"]?["id"])
        XCTAssertEqual(port["peers"], [["identity": client, "access": "rules", "rules": [0, 1]]])

        let trace = "/v1/policy/trace?src=1&dst=2&dport=80&protocol=TCP"
        let allowed = try p.agent.getJSON(trace + "&http-method=GET&http-path=/public/a%3Fb%3D1")
        XCTAssertEqual(allowed["verdict"], "allowed", "\(allowed)")
        XCTAssertEqual(allowed["http"]?["request"]?["path"], "/public/a?b=1")
        XCTAssertEqual(allowed["http"]?["verdict"], "allowed")
        let denied = try p.agent.getJSON(trace + "&http-method=POST&http-path=/public/a")
        XCTAssertEqual(denied["verdict"], "denied", "\(denied)")
        XCTAssertTrue(denied["reason"]?.stringValue?.hasPrefix("HTTP policy of the destination") == true, "\(denied)")
        assertAPIError(
            try p.agent.api(.GET, "/v1/policy/trace?src=1&dst=2&dport=80&protocol=UDP&http-method=GET"), status: 400,
            code: "invalid-field", field: "protocol", mentions: ["TCP"])

        let output = try p.agent.nodectl(
            "policy", "trace", "--src", "1", "--dst", "2", "--dport", "80/tcp", "--http-method", "POST",
            "--http-path", "/x")
        XCTAssertEqual(output.status, 0, output.stderr)
        XCTAssertTrue(output.stdout.contains("HTTP (TCP/80):"), output.stdout)
        XCTAssertTrue(output.stdout.contains("Request:  POST /x"), output.stdout)
        XCTAssertTrue(output.stdout.contains("x-token: 7"), output.stdout)
        let shown = try p.agent.nodectl("endpoint", "policy", "2")
        XCTAssertTrue(shown.stdout.contains("HTTP rules on TCP/80:"), shown.stdout)
    }
}
