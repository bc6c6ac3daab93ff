import AgentAPI
import Glibc
import Netlink
import XCTest

/// The node's addresses as the agent reads them once a second: one address dump of the namespace, checked against
/// the addresses the scratch namespace was given.
final class AddressDumpTests: XCTestCase {
    func testEveryAddressOfTheNamespaceAndNothingElse() throws {
        try XCTSkipUnless(geteuid() == 0, "creating network namespaces needs root")
        let scratch = try ScratchNamespace(for: self)
        // Links without addresses add nothing; an address added later is seen by the next dump.
        for index in 0..<20 {
            try scratch.ip(["link", "add", "x\(index)", "type", "veth", "peer", "name", "y\(index)"])
        }
        try scratch.ip(["link", "set", "lo", "up"])
        try scratch.ip(["address", "add", "203.0.113.7/32", "dev", "x3"])
        let addresses = Set(try NetlinkSocket(namespace: scratch.path).allAddresses().map(\.description))
        // Link-local IPv6 addresses come and go with the links' state; every other address is exactly the set given.
        XCTAssertEqual(
            addresses.filter { !$0.hasPrefix("fe80:") },
            Set(["127.0.0.1", "::1", "192.0.2.1", "198.51.100.1", "2001:db8:1::1", "2001:db8:2::1", "203.0.113.7"]))
    }
}
