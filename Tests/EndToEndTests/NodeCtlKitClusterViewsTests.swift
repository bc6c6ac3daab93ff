import AgentAPI
import NodeCtlKit
import XCTest

/// `nodectl node list` and the cluster part of `nodectl status`.
final class NodeCtlKitClusterViewsTests: XCTestCase {
    func testNodeListShowsThisNodeFirstThenTheOthers() {
        let answer: JSON = [
            "cluster": true, "self": "node1",
            "nodes": [
                [
                    "name": "node1", "address": "192.168.86.1", "pod-cidrs": ["10.244.1.0/24", "fd00:1::/64"],
                    "last-seen": "2026-12-04T18:00:00.000Z", "local": true,
                ],
                [
                    "name": "node2", "address": "192.168.86.2", "pod-cidrs": ["10.244.2.0/24"],
                    "last-seen": "2026-12-04T17:59:58.000Z", "local": false,
                ],
            ],
        ]
        XCTAssertEqual(
            ClusterViews.nodes(answer),
            """
            NAME            ADDRESS        POD CIDRS                   LAST SEEN
            node1 (local)   192.168.86.1   10.244.1.0/24,fd00:1::/64   2026-12-04T18:00:00.000Z
            node2           192.168.86.2   10.244.2.0/24               2026-12-04T17:59:58.000Z

            """)
        let standalone: JSON = [
            "cluster": false, "self": "host",
            "nodes": [["name": "host", "pod-cidrs": [], "last-seen": "2026-12-04T18:00:00.000Z", "local": true]],
        ]
        XCTAssertTrue(ClusterViews.nodes(standalone).hasSuffix("Standalone: not part of a cluster\n"))
    }

    func testStatusShowsEtcdAndItsMembers() {
        let health: JSON = [
            "status": "ok", "endpoints": 2, "policy-revision": 3,
            "cluster": [
                "name": "prod", "node": "node1", "node-address": "192.168.86.1", "synced": false, "nodes": 3,
                "remote-endpoints": 4, "owned-keys": 5, "writes": 9, "errors": 2,
                "last-sync": "2026-12-04T18:00:00.000Z",
                "etcd": [
                    "endpoints": ["http://10.0.0.1:2379", "http://10.0.0.2:2379"], "state": "unreachable",
                    "last-error": "etcd is unreachable",
                    "members": [
                        ["endpoint": "http://10.0.0.1:2379", "healthy": false, "error": "connection refused"],
                        ["endpoint": "http://10.0.0.2:2379", "healthy": false, "error": "connection refused"],
                    ],
                ],
            ],
        ]
        let text = StatusView.render(health)
        XCTAssertTrue(text.contains("Cluster:          prod (node node1, address 192.168.86.1)\n"), text)
        XCTAssertTrue(text.contains("etcd:             unreachable\n"), text)
        XCTAssertTrue(text.contains("etcd last error:  etcd is unreachable\n"), text)
        XCTAssertTrue(text.contains("Nodes known:      3\n"), text)
        XCTAssertTrue(text.contains("Cluster synced:   false\n"), text)
        XCTAssertTrue(text.contains("  http://10.0.0.2:2379   false     -         connection refused\n"), text)
        XCTAssertFalse(StatusView.render(["status": "ok"]).contains("etcd"), "standalone: no cluster part")
    }
}
