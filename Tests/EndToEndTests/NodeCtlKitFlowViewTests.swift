import AgentAPI
import Glibc
import NodeCtlKit
import XCTest

/// `nodectl observe` lines and the flow query it sends.
final class NodeCtlKitFlowViewTests: XCTestCase {
    private var savedTZ: String?

    override func setUp() {
        savedTZ = getenv("TZ").map { String(cString: $0) }
        setenv("TZ", "UTC", 1)
        tzset()
    }

    override func tearDown() {
        if let savedTZ { setenv("TZ", savedTZ, 1) } else { unsetenv("TZ") }
        tzset()
    }

    private static func peer(_ ip: String, _ port: Int, pod: String? = nil, name: String? = nil) -> JSON {
        var object: [String: JSON] = ["ip": .string(ip), "port": .int(Int64(port)), "name": .string(name ?? pod ?? ip)]
        if let pod { object["pod"] = .string(pod) }
        return .object(object)
    }

    private let drop: JSON = [
        "time": "2026-11-28T08:01:02.123456789Z", "verdict": "DROPPED", "reason": "policy denied", "reason-code": 133,
        "direction": "egress", "protocol": "TCP",
        "source": peer("10.244.1.1", 41234, pod: "web-tier/frontend"),
        "destination": peer("10.244.1.2", 9090, pod: "api-tier/backend-api"),
    ]

    func testDropLineAsTheSeedArticleShowsIt() {
        XCTAssertEqual(
            FlowViews.line(drop),
            "Nov 28 08:01:02.123  web-tier/frontend:41234 -> api-tier/backend-api:9090  DROPPED  policy denied (egress)"
        )
    }

    func testForwardedLinesNameTheRule() {
        var allowed = drop.objectValue!
        allowed["verdict"] = "FORWARDED"
        allowed["reason"] = "forwarded"
        allowed["rule"] = "web-tier/allow-frontend-to-backend egress[0]"
        allowed["destination"] = Self.peer("10.244.1.2", 8080, pod: "api-tier/backend-api")
        XCTAssertEqual(
            FlowViews.line(.object(allowed)),
            "Nov 28 08:01:02.123  web-tier/frontend:41234 -> api-tier/backend-api:8080  FORWARDED  "
                + "allowed (egress) by web-tier/allow-frontend-to-backend egress[0]")
        allowed.removeValue(forKey: "rule")
        XCTAssertTrue(FlowViews.line(.object(allowed)).hasSuffix("FORWARDED  not enforced (egress)"))
    }

    func testPeersOutsideTheClusterShowAddressAndName() {
        var flow = drop.objectValue!
        flow["protocol"] = "UDP"
        flow["time"] = "2026-01-02T03:04:05.000Z"
        flow["destination"] = Self.peer("93.184.216.34", 53, name: "world")
        XCTAssertEqual(
            FlowViews.line(.object(flow)),
            "Jan  2 03:04:05.000  web-tier/frontend:41234 -> 93.184.216.34:53 (world)  DROPPED  "
                + "policy denied (egress, UDP)"
        )
        flow["destination"] = Self.peer("fd00::5", 443)
        XCTAssertTrue(
            FlowViews.line(.object(flow)).contains("-> [fd00::5]:443  DROPPED"), FlowViews.line(.object(flow)))
    }

    func testICMPHasNoPorts() {
        var flow = drop.objectValue!
        flow["protocol"] = "ICMP"
        flow["source"] = ["ip": "10.244.1.1", "icmp-id": 7, "pod": "web-tier/frontend", "name": "web-tier/frontend"]
        flow["destination"] = ["ip": "8.8.8.8", "name": "world"]
        XCTAssertEqual(
            FlowViews.line(.object(flow)),
            "Nov 28 08:01:02.123  web-tier/frontend -> 8.8.8.8 (world)  DROPPED  policy denied (egress, ICMP)")
    }

    func testListSaysWhenNothingMatches() {
        XCTAssertEqual(FlowViews.list(["flows": []]), "No flows match\n")
        XCTAssertEqual(FlowViews.list(["flows": [drop, drop]]).split(separator: "\n").count, 2)
    }

    func testSelectionQuery() {
        var selection = FlowSelection()
        selection.verdict = "DROPPED"
        selection.fromPod = "web-tier/frontend"
        selection.labels = ["k8s:app=x", "k8s:team=y"]
        selection.port = 9090
        selection.transport = "TCP"
        selection.last = 5
        XCTAssertEqual(
            selection.query.map { "\($0.0)=\($0.1)" },
            [
                "verdict=DROPPED", "from-pod=web-tier/frontend", "label=k8s:app=x,k8s:team=y", "port=9090",
                "protocol=TCP", "last=5",
            ])
        XCTAssertEqual(
            AgentClient.target("/v1/flows", query: selection.query),
            "/v1/flows?verdict=DROPPED&from-pod=web-tier/frontend&label=k8s:app%3Dx,k8s:team%3Dy&port=9090"
                + "&protocol=TCP&last=5"
        )
    }
}
