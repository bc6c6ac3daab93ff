import AgentAPI
import NodeCtlKit
import XCTest

/// `nodectl service ...` output, and the ServiceSpec `service update` builds from flags or reads from a file.
final class NodeCtlKitServiceViewTests: XCTestCase {
    private let web: JSON = [
        "spec": [
            "id": 12,
            "frontend-address": ["ip": "10.96.0.10", "port": 80, "protocol": "TCP", "scope": "external"],
            "backend-addresses": [
                ["ip": "10.0.0.7", "port": 8080, "weight": 1, "state": "active"],
                ["ip": "10.0.0.8", "port": 8080, "weight": 0, "state": "maintenance"],
            ],
            "flags": ["type": "ClusterIP", "name": "web", "namespace": "shop", "session-affinity": "None"],
        ],
        "status": ["realized": true],
    ]
    private let dns: JSON = [
        "spec": [
            "id": 3,
            "frontend-address": ["ip": "fd00::a", "port": 53, "protocol": "UDP", "scope": "external"],
            "backend-addresses": [["ip": "fd00::1", "port": 53, "weight": 1, "state": "active"]],
            "flags": ["type": "NodePort", "session-affinity": "ClientIP", "session-affinity-timeout": 600],
        ],
        "status": ["realized": false, "message": "map na_lb4_services is full"],
    ]
    private let empty: JSON = [
        "spec": [
            "id": 40, "frontend-address": ["ip": "10.96.0.40", "port": 443, "protocol": "TCP", "scope": "external"],
            "backend-addresses": [], "flags": ["type": "LoadBalancer", "session-affinity": "None"],
        ],
        "status": ["realized": true],
    ]

    func testListHasOneRowPerBackendLikeCiliumDbg() {
        XCTAssertEqual(
            ServiceViews.list([web, empty, dns]),
            """
            ID   FRONTEND             SERVICE TYPE   BACKEND
            3    [fd00::a]:53/UDP     NodePort       1 => [fd00::1]:53/UDP (active)
            12   10.96.0.10:80/TCP    ClusterIP      1 => 10.0.0.7:8080/TCP (active)
                                                     2 => 10.0.0.8:8080/TCP (maintenance)
            40   10.96.0.40:443/TCP   LoadBalancer   -

            Service 3 is not realized: map na_lb4_services is full

            """)
        XCTAssertEqual(ServiceViews.list([]), "No services\n")
    }

    func testDetailAndDeleted() {
        XCTAssertEqual(
            ServiceViews.detail(dns),
            """
            ID:                3
            Frontend:          [fd00::a]:53/UDP (external)
            Type:              NodePort
            Session affinity:  ClientIP (600s)
            Realized:          false
            Message:           map na_lb4_services is full
            Backends:          1
              1 => [fd00::1]:53/UDP (active, weight 1)

            """)
        XCTAssertTrue(ServiceViews.detail(web).contains("Name:              shop/web\n"), ServiceViews.detail(web))
        XCTAssertEqual(ServiceViews.deleted(web), "Deleted service 12 (10.96.0.10:80/TCP)\n")
    }

    func testSpecFromFlags() throws {
        XCTAssertEqual(
            try ServiceSpecInput.spec(
                frontend: "10.96.0.10:80", backends: ["10.0.0.1:8080,10.0.0.2:8080", "10.0.0.3:9090"],
                protocol: "UDP", type: "NodePort", states: ["terminating"]),
            [
                "frontend-address": ["ip": "10.96.0.10", "port": 80, "protocol": "UDP"],
                "backend-addresses": [
                    ["ip": "10.0.0.1", "port": 8080, "state": "terminating"],
                    ["ip": "10.0.0.2", "port": 8080, "state": "terminating"],
                    ["ip": "10.0.0.3", "port": 9090, "state": "terminating"],
                ],
                "flags": ["type": "NodePort"],
            ])
        XCTAssertEqual(
            try ServiceSpecInput.spec(
                frontend: "[fd00::a]:53", backends: ["[fd00::1]:53", "[fd00::2]:53"], states: ["active,maintenance"]),
            [
                "frontend-address": ["ip": "fd00::a", "port": 53],
                "backend-addresses": [
                    ["ip": "fd00::1", "port": 53, "state": "active"],
                    ["ip": "fd00::2", "port": 53, "state": "maintenance"],
                ],
            ])
        XCTAssertThrowsError(try ServiceSpecInput.spec(frontend: "10.96.0.10", backends: [])) { error in
            XCTAssertEqual(
                (error as? InputError)?.message,
                "--frontend: expected IP:PORT ([IPv6]:PORT for IPv6), got \"10.96.0.10\"")
        }
        XCTAssertThrowsError(try ServiceSpecInput.spec(frontend: "10.96.0.10:80", backends: ["fd00::1:80"])) { error in
            XCTAssertEqual(
                (error as? InputError)?.message,
                "--backends: expected IP:PORT ([IPv6]:PORT for IPv6), got \"fd00::1:80\"")
        }
        XCTAssertThrowsError(
            try ServiceSpecInput.spec(
                frontend: "10.96.0.10:80", backends: ["10.0.0.1:80,10.0.0.2:80,10.0.0.3:80"], states: ["active,active"])
        ) { error in
            XCTAssertEqual(
                (error as? InputError)?.message,
                "--states: 2 states for 3 backends (give one for each, or one for all)")
        }
    }

    func testSpecFromYAMLOrJSON() throws {
        let yaml = """
            # a ClusterIP service
            id: 7
            frontend-address: {ip: 10.96.0.10, port: 80}
            backend-addresses:
              - ip: 10.0.0.1
                port: 8080
            """
        XCTAssertEqual(
            try ServiceSpecInput.load(path: "-", standardInput: { Array(yaml.utf8) }),
            [
                "id": 7, "frontend-address": ["ip": "10.96.0.10", "port": 80],
                "backend-addresses": [["ip": "10.0.0.1", "port": 8080]],
            ])
        let json = #"{"frontend-address": {"ip": "10.96.0.10", "port": 80}}"#
        XCTAssertEqual(
            try ServiceSpecInput.load(path: "-", standardInput: { Array(json.utf8) }),
            ["frontend-address": ["ip": "10.96.0.10", "port": 80]])
        XCTAssertThrowsError(try ServiceSpecInput.load(path: "-", standardInput: { Array("- a\n- b\n".utf8) })) {
            XCTAssertEqual(
                ($0 as? InputError)?.message, "standard input: expected one ServiceSpec object, found array")
        }
        XCTAssertThrowsError(try ServiceSpecInput.load(path: "/nonexistent/na-service.yaml")) {
            XCTAssertEqual(($0 as? InputError)?.message, "/nonexistent/na-service.yaml: No such file or directory")
        }
    }
}
