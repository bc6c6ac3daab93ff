import AgentAPI
import NodeCtlKit
import XCTest

/// `nodectl map get na_lb_services` and `na_lb_backends`: the decoded entries (as `GET /v1/map/{name}` gives them,
/// in map order) shown as `cilium-dbg bpf lb list` shows the load balancer.
final class NodeCtlKitLBMapViewTests: XCTestCase {
    private func slot(_ frontend: String, _ slot: Int, bank: Int, backend: String?, id: Int, position: Int) -> JSON {
        var value: [String: JSON] = ["backend-id": .int(Int64(id)), "position": .int(Int64(position))]
        if let backend { value["backend"] = .string(backend) }
        return [
            "key": ["frontend": .string(frontend), "slot": .int(Int64(slot)), "bank": .int(Int64(bank))],
            "value": .object(value),
        ]
    }

    private func head(_ frontend: String, id: Int, count: Int, inactive: Int, bank: Int, affinity: Int) -> JSON {
        [
            "key": ["frontend": .string(frontend), "slot": 0],
            "value": [
                "service-id": .int(Int64(id)), "count": .int(Int64(count)), "inactive": .int(Int64(inactive)),
                "bank": .int(Int64(bank)), "affinity-timeout": .int(Int64(affinity)),
            ],
        ]
    }

    func testServicesReadAsCiliumDbgBPFLBList() {
        let web = "10.96.0.10:80/TCP"
        let dns = "[fd00::a]:53/UDP"
        let response: JSON = [
            "name": "na_lb_services",
            "entries": [
                slot(web, 2, bank: 1, backend: "10.0.0.8:8080", id: 2, position: 1),
                head(dns, id: 3, count: 1, inactive: 0, bank: 0, affinity: 600),
                slot(web, 4, bank: 1, backend: "10.0.0.9:8080", id: 3, position: 2),
                head(web, id: 12, count: 3, inactive: 1, bank: 1, affinity: 0),
                slot(web, 1, bank: 1, backend: "10.0.0.7:8080", id: 1, position: 0),
                slot(dns, 1, bank: 0, backend: "[fd00::1]:53", id: 5, position: 0),
                slot(web, 3, bank: 1, backend: "10.0.0.8:8080", id: 2, position: 1),
                // Left from the bank before a swap (the agent deletes it right after the flip).
                slot(web, 1, bank: 0, backend: nil, id: 9, position: 0),
            ],
        ]
        XCTAssertEqual(
            MapViews.entries(response),
            """
            SERVICE ADDRESS     BACKEND ADDRESS (REVNAT_ID) (SLOT)
            10.96.0.10:80/TCP   0.0.0.0:0 (12) (0) [slots 3, inactive 1, bank 1]
                                10.0.0.7:8080 (12) (1)
                                10.0.0.8:8080 (12) (2)
                                10.0.0.8:8080 (12) (3)
                                10.0.0.9:8080 (12) (4) [inactive]
                                id 9 (12) (1) [unused bank]
            [fd00::a]:53/UDP    [::]:0 (3) (0) [slots 1, inactive 0, bank 0, affinity 600s]
                                [fd00::1]:53 (3) (1)

            """)
    }

    func testBackendsByID() {
        let response: JSON = [
            "name": "na_lb_backends",
            "entries": [
                [
                    "key": ["backend-id": 2],
                    "value": ["address": "10.0.0.8:8080", "protocol": "TCP", "state": "terminating", "weight": 3],
                ],
                [
                    "key": ["backend-id": 1],
                    "value": ["address": "[fd00::1]:53", "protocol": "UDP", "state": "active", "weight": 1],
                ],
            ],
        ]
        XCTAssertEqual(
            MapViews.entries(response),
            """
            BACKEND ID   ADDRESS         PROTOCOL   STATE         WEIGHT
            1            [fd00::1]:53    UDP        active        1
            2            10.0.0.8:8080   TCP        terminating   3

            """)
        // Entries the agent could not decode keep the generic view.
        let raw: JSON = ["name": "na_lb_backends", "entries": [["key-hex": "01000000", "value-hex": "00"]]]
        XCTAssertEqual(MapViews.entries(raw), "KEY-HEX    VALUE-HEX\n01000000   00\n")
        XCTAssertEqual(MapViews.entries(["name": "na_lb_services", "entries": []]), "No entries in na_lb_services\n")
    }
}
