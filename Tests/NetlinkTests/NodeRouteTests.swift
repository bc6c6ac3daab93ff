import AgentAPI
import Glibc
import Netlink
import XCTest

/// Routes to other nodes' pod CIDRs as the agent installs them, in a scratch namespace, each call checked against
/// what the kernel reports to `ip -j route`.
final class NodeRouteTests: XCTestCase {
    private typealias Route = NetlinkSocket.Route
    private var scratch: ScratchNamespace!
    private var netlink: NetlinkSocket!

    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "creating network namespaces needs root")
        scratch = try ScratchNamespace(for: self)
        let before = try ScratchNamespace.currentNamespace()
        netlink = try NetlinkSocket(namespace: scratch.path)
        XCTAssertEqual(try ScratchNamespace.currentNamespace(), before, "the thread is back in its own namespace")
    }

    override func tearDown() {
        netlink = nil
        super.tearDown()
    }

    func testReplaceInstallsOneRouteAndMovesItToANewGateway() throws {
        for (destination, first, second) in [
            ("10.200.1.0/24", "192.0.2.10", "198.51.100.10"), ("fd00:10:1::/64", "2001:db8:1::10", "2001:db8:2::10"),
        ] {
            try netlink.replaceRoute(destination, gateway: first, protocol: .nodeagent)
            try assertKernelRoute(destination, gateway: first, device: "d0")
            // The same route again is no second route, and no error.
            try netlink.replaceRoute(destination, gateway: first, protocol: .nodeagent)
            try assertKernelRoute(destination, gateway: first, device: "d0")

            // The node moved: one route, through the new gateway, out of the link the kernel found it on.
            try netlink.replaceRoute(destination, gateway: second, protocol: .nodeagent)
            try assertKernelRoute(destination, gateway: second, device: "d1")
            XCTAssertEqual(
                try netlink.routes(protocol: .nodeagent).filter { $0.destination == destination },
                [Route(destination: destination, gateway: second, interfaceIndex: try scratch.index(of: "d1"))])
        }
    }

    /// `ip route replace` semantics: a route to the same destination installed by someone else becomes ours.
    func testReplaceTakesOverARouteToTheSameDestination() throws {
        try scratch.ip(["route", "add", "10.204.0.0/24", "via", "192.0.2.40", "proto", "static"])
        try netlink.replaceRoute("10.204.0.0/24", gateway: "198.51.100.40", protocol: .nodeagent)
        try assertKernelRoute("10.204.0.0/24", gateway: "198.51.100.40", device: "d1")
    }

    func testListingByProtocolFindsOurRoutesOnly() throws {
        try netlink.replaceRoute("10.200.2.0/24", gateway: "192.0.2.20", protocol: .nodeagent)
        try netlink.replaceRoute("fd00:10:2::/64", gateway: "2001:db8:2::20", protocol: .nodeagent)
        try scratch.ip(["route", "add", "10.201.0.0/24", "via", "192.0.2.30", "proto", "static"])
        try scratch.ip(["-6", "route", "add", "fd00:20:1::/64", "via", "2001:db8:1::30", "proto", "static"])
        let d0 = try scratch.index(of: "d0")
        let d1 = try scratch.index(of: "d1")

        XCTAssertEqual(
            Set(try netlink.routes(protocol: .nodeagent).map(\.destination)), ["10.200.2.0/24", "fd00:10:2::/64"])
        let ours = try netlink.routes(protocol: .nodeagent)
        XCTAssertTrue(ours.contains(Route(destination: "10.200.2.0/24", gateway: "192.0.2.20", interfaceIndex: d0)))
        XCTAssertTrue(
            ours.contains(Route(destination: "fd00:10:2::/64", gateway: "2001:db8:2::20", interfaceIndex: d1)))
        XCTAssertEqual(
            Set(try netlink.routes(protocol: .static).map(\.destination)), ["10.201.0.0/24", "fd00:20:1::/64"])

        // Without a protocol: everything of the main table, the kernel's subnet routes included.
        let all = try netlink.routes()
        for destination in ["10.200.2.0/24", "10.201.0.0/24", "fd00:20:1::/64", "192.0.2.0/24", "2001:db8:1::/64"] {
            XCTAssertTrue(all.contains { $0.destination == destination }, "\(destination) in \(all)")
        }
        XCTAssertTrue(all.contains(Route(destination: "192.0.2.0/24", interfaceIndex: d0)), "\(all)")
        // What the API lists is what the kernel holds.
        let kernel = try (scratch.kernelRoutes() + scratch.kernelRoutes(ipv6: true)).filter {
            $0["protocol"]?.stringValue == String(RouteProtocol.nodeagent.rawValue)
        }
        XCTAssertEqual(Set(kernel.compactMap { $0["dst"]?.stringValue }), Set(ours.map(\.destination)))
    }

    func testDeleteRemovesOurRouteAndNoOneElses() throws {
        try netlink.replaceRoute("10.200.3.0/24", gateway: "192.0.2.50", protocol: .nodeagent)
        try netlink.replaceRoute("fd00:10:3::/64", gateway: "2001:db8:1::50", protocol: .nodeagent)
        try scratch.ip(["route", "add", "10.203.0.0/24", "via", "192.0.2.60", "proto", "static"])
        try scratch.ip(["-6", "route", "add", "fd00:20:3::/64", "via", "2001:db8:1::60", "proto", "static"])

        for destination in ["10.200.3.0/24", "fd00:10:3::/64"] {
            XCTAssertTrue(try netlink.deleteRoute(destination, protocol: .nodeagent), destination)
            XCTAssertEqual(try scratch.kernelRoutes(to: destination).count, 0, "\(destination) is gone")
            XCTAssertFalse(try netlink.deleteRoute(destination, protocol: .nodeagent), "\(destination) twice")
        }
        XCTAssertEqual(try netlink.routes(protocol: .nodeagent), [])

        // Someone else's route to a destination is not ours to delete.
        for destination in ["10.203.0.0/24", "fd00:20:3::/64"] {
            XCTAssertFalse(try netlink.deleteRoute(destination, protocol: .nodeagent), destination)
            let kept = try scratch.kernelRoutes(to: destination)
            XCTAssertEqual(kept.count, 1, "\(destination) stays")
            XCTAssertEqual(kept.first?["protocol"]?.stringValue, "static")
        }
    }

    func testAnUnreachableGatewayIsRefusedNamingTheRoute() throws {
        let cases = [("10.202.0.0/24", "203.0.113.9", ENETUNREACH), ("fd00:10:4::/64", "2001:db8:99::9", EHOSTUNREACH)]
        for (destination, gateway, errno) in cases {
            XCTAssertThrowsError(try netlink.replaceRoute(destination, gateway: gateway, protocol: .nodeagent)) {
                error in
                let error = error as? AgentError
                XCTAssertEqual(error?.code, .datapath, "\(String(describing: error))")
                let message = error?.message ?? ""
                XCTAssertEqual(error?.errno, errno, "the kernel's errno is kept: \(message)")
                XCTAssertTrue(message.contains(destination) && message.contains(gateway), message)
                // libnl calls both errnos "Unspecific failure"; the message carries the kernel's reason.
                XCTAssertTrue(message.contains(String(cString: strerror(errno))), message)
            }
            XCTAssertEqual(try scratch.kernelRoutes(to: destination).count, 0)
        }
    }

    func testMalformedArgumentsNameTheField() throws {
        let cases: [(String, String, String)] = [
            ("10.200.9.0/33", "192.0.2.9", "destination"), ("default", "192.0.2.9", "destination"),
            ("10.200.9.0/24", "192.0.2", "gateway"), ("10.200.9.0/24", "2001:db8:1::9", "gateway"),
        ]
        for (destination, gateway, field) in cases {
            XCTAssertThrowsError(try netlink.replaceRoute(destination, gateway: gateway, protocol: .nodeagent)) {
                XCTAssertEqual(($0 as? AgentError)?.field, field, "\(destination) via \(gateway): \($0)")
            }
        }
        XCTAssertEqual(try scratch.kernelRoutes().filter { $0["protocol"]?.stringValue == "78" }.count, 0)
    }

    /// One route of `destination` in the kernel: through `gateway`, out of `device`, marked as the agent's.
    private func assertKernelRoute(
        _ destination: String, gateway: String, device: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let routes = try scratch.kernelRoutes(to: destination)
        XCTAssertEqual(routes.count, 1, "\(destination): \(routes)", file: file, line: line)
        XCTAssertEqual(routes.first?["gateway"]?.stringValue, gateway, file: file, line: line)
        XCTAssertEqual(routes.first?["dev"]?.stringValue, device, file: file, line: line)
        XCTAssertEqual(routes.first?["protocol"]?.stringValue, "78", file: file, line: line)
    }
}
