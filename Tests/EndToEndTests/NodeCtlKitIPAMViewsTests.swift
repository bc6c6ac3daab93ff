import AgentAPI
import NodeCtlKit
import XCTest

/// `nodectl ipam ...` tables.
final class NodeCtlKitIPAMViewsTests: XCTestCase {
    func testListShowsEachFamilyThenTheAllocations() {
        let listing: JSON = [
            "ipv4": ["pod-cidr": "10.0.1.0/24", "gateway": "10.0.1.1", "allocated": 2, "free": 251],
            "ipv6": ["pod-cidr": "fd00::/120", "gateway": "fd00::1", "allocated": 0, "free": 254],
            "allocations": [
                ["ip": "10.0.1.2", "family": "ipv4", "owner": "3f1c9a0b", "pod": "web/a", "endpoint": 4],
                ["ip": "10.0.1.3", "family": "ipv4", "owner": "web/b", "expires": "2026-11-28T08:00:00.000Z"],
            ],
        ]
        XCTAssertEqual(
            IPAMViews.list(listing),
            """
            IPv4: pod CIDR 10.0.1.0/24, gateway 10.0.1.1, 2 allocated, 251 free
            IPv6: pod CIDR fd00::/120, gateway fd00::1, 0 allocated, 254 free

            IP         FAMILY   OWNER      POD     ENDPOINT   EXPIRES
            10.0.1.2   ipv4     3f1c9a0b   web/a   4          -
            10.0.1.3   ipv4     web/b      -       -          2026-11-28T08:00:00.000Z

            """)
        XCTAssertTrue(IPAMViews.list(["allocations": []]).hasSuffix("No allocations\n"))
    }

    func testAllocatedReleasedAndGarbage() {
        let allocated: JSON = [
            "address": ["ipv4": "10.0.1.5"],
            "host-addressing": ["ipv4": ["enabled": true, "ip": "10.0.1.1", "alloc-range": "10.0.1.0/24"]],
            "ipv4": ["ip": "10.0.1.5", "gateway": "10.0.1.1", "cidrs": ["10.0.0.0/16"]],
        ]
        XCTAssertEqual(
            IPAMViews.allocated(allocated),
            """
            FAMILY   IP         GATEWAY    POD CIDR      EXPIRATION UUID
            ipv4     10.0.1.5   10.0.1.1   10.0.1.0/24   -

            """)
        XCTAssertEqual(IPAMViews.released(["ip": "10.0.1.5", "released": false]), "10.0.1.5 was not allocated\n")
        XCTAssertEqual(IPAMViews.released(["ip": "10.0.1.5", "released": true]), "Released 10.0.1.5\n")
        XCTAssertEqual(IPAMViews.garbage(["dry-run": true, "orphans": [], "released": 0]), "No orphaned allocations\n")
        let dryRun = IPAMViews.garbage([
            "dry-run": true, "released": 0,
            "orphans": [["ip": "10.0.1.9", "family": "ipv4", "owner": "web/c", "endpoint": 7]],
        ])
        XCTAssertTrue(dryRun.hasPrefix("1 orphaned allocations (dry run: nothing released)\n\nIP "), dryRun)
        XCTAssertTrue(dryRun.contains("10.0.1.9   ipv4     web/c   -     7"), dryRun)
    }
}
