import AgentAPI
import NodeCtlKit
import XCTest

/// `nodectl nat list` and `nat flush` output.
final class NodeCtlKitNATViewTests: XCTestCase {
    func testListShowsOneRowPerMapping() {
        let response: JSON = [
            "mappings": [
                [
                    "protocol": "TCP", "original": ["address": "10.244.1.5", "port": 41000],
                    "translated": ["address": "172.31.0.1", "port": 51234],
                    "destination": ["address": "198.51.100.20", "port": 443], "state": "established",
                    "age-seconds": 75, "expires-in-seconds": 7990, "tracked": true, "complete": true,
                ],
                [
                    "protocol": "ICMP", "original": ["address": "10.244.1.5", "port": 7],
                    "translated": ["address": "172.31.0.1", "port": 40001],
                    "destination": ["address": "198.51.100.20", "port": 0], "state": "active",
                    "age-seconds": 0, "expires-in-seconds": 60, "tracked": true, "complete": true,
                ],
            ],
            "total": 2, "next-cursor": nil,
        ]
        XCTAssertEqual(
            NATViews.list(response),
            """
            PROTOCOL   ORIGINAL           TRANSLATED         DESTINATION         STATE         AGE     EXPIRES
            TCP        10.244.1.5:41000   172.31.0.1:51234   198.51.100.20:443   established   1m15s   2h13m10s
            ICMP       10.244.1.5:7       172.31.0.1:40001   198.51.100.20:0     active        0s      1m0s

            """)
    }

    func testEmptyListAndFlush() {
        XCTAssertEqual(NATViews.list(["mappings": [], "total": 0, "next-cursor": nil]), "No NAT mappings\n")
        XCTAssertEqual(
            NATViews.flush(["deleted-entries": 6]), "Deleted 6 NAT entries (3 mappings, two entries each)\n")
    }
}
