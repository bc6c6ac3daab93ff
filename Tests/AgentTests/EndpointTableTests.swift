import DatapathCore
import Policy
import XCTest

@testable import Agent

final class EndpointTableTests: XCTestCase {
    private func endpoint(_ id: UInt32, _ interface: String, _ ipv4: String?, _ ipv6: String? = nil) -> Endpoint {
        Endpoint(
            id: id, interfaceName: interface, ifindex: Int32(id + 10), ipv4: ipv4.flatMap { IPAddress($0) },
            ipv6: ipv6.flatMap { IPAddress($0) }, labels: LabelSet(), k8sNamespace: nil, k8sPodName: nil,
            containerID: nil, identity: 1000 + id, state: .ready, policyRevision: 1, enforceIngress: false,
            enforceEgress: false)
    }

    func testLookupsFollowEveryWrite() {
        var table = EndpointTable()
        table[1] = endpoint(1, "lxc1", "10.0.0.1", "fd00::1")
        table[2] = endpoint(2, "lxc2", "10.0.0.2")
        XCTAssertEqual(table.id(onInterface: "lxc1"), 1)
        XCTAssertEqual(table.id(withAddress: IPAddress("fd00::1")!), 1)
        XCTAssertEqual(table.endpoint(withAddress: IPAddress("10.0.0.2")!)?.interfaceName, "lxc2")
        XCTAssertNil(table.id(onInterface: "lxc3"))

        // A new address and interface for endpoint 1: the old ones are free, the new ones its own.
        table[1] = endpoint(1, "lxc9", "10.0.0.9")
        XCTAssertNil(table.id(onInterface: "lxc1"))
        XCTAssertNil(table.id(withAddress: IPAddress("10.0.0.1")!))
        XCTAssertNil(table.id(withAddress: IPAddress("fd00::1")!))
        XCTAssertEqual(table.id(onInterface: "lxc9"), 1)
        XCTAssertEqual(table.id(withAddress: IPAddress("10.0.0.9")!), 1)

        // Fields outside the indexes change nothing in them.
        table[2]?.policyGeneration = 7
        XCTAssertEqual(table.endpoint(withAddress: IPAddress("10.0.0.2")!)?.policyGeneration, 7)

        table[2] = nil
        XCTAssertNil(table.id(onInterface: "lxc2"))
        XCTAssertNil(table.id(withAddress: IPAddress("10.0.0.2")!))
        XCTAssertEqual(table.count, 1)
        XCTAssertFalse(table.contains(id: 2))
        XCTAssertTrue(table.contains(id: 1))
    }

    func testAnEntryIsRemovedOnlyByTheEndpointItNames() {
        // Not a state the agent makes (a create refuses a second holder), but the table must not lose the holder's
        // entry when another endpoint that claimed the same name goes away.
        var table = EndpointTable()
        table[1] = endpoint(1, "lxc1", "10.0.0.1")
        table[2] = endpoint(2, "lxc2", "10.0.0.2")
        table[2] = endpoint(2, "lxc2", "10.0.0.3")
        table[3] = endpoint(3, "lxc3", "10.0.0.3")
        table[2] = nil
        XCTAssertEqual(table.id(withAddress: IPAddress("10.0.0.3")!), 3)
        XCTAssertEqual(table.id(withAddress: IPAddress("10.0.0.1")!), 1)
    }

    func testRandomWritesAgreeWithAWalkOfEveryEndpoint() {
        var generator = SystemRandomNumberGenerator()
        var table = EndpointTable()
        var reference: [UInt32: Endpoint] = [:]
        let interfaces = (0..<12).map { "lxc\($0)" }
        let v4 = (0..<12).map { "10.0.0.\($0)" }
        let v6 = (0..<12).map { "fd00::\($0)" }
        for step in 0..<3000 {
            let id = UInt32.random(in: 1...8, using: &generator)
            if Int.random(in: 0..<6, using: &generator) == 0 {
                let revision = UInt64.random(in: 1...3, using: &generator)
                table.setPolicyRevision(revision)
                for key in reference.keys { reference[key]?.policyRevision = revision }
            } else if Bool.random(using: &generator), reference[id] != nil {
                table[id] = nil
                reference[id] = nil
            } else {
                var candidate = endpoint(
                    id, interfaces.randomElement(using: &generator)!, v4.randomElement(using: &generator),
                    Bool.random(using: &generator) ? v6.randomElement(using: &generator) : nil)
                candidate.policyRevision = UInt64.random(in: 1...3, using: &generator)
                // Only writes the agent would make: no other endpoint holds the interface or an address.
                let taken = reference.values.contains { other in
                    other.id != id
                        && (other.interfaceName == candidate.interfaceName
                            || candidate.addresses.contains { other.addresses.contains($0) })
                }
                if taken { continue }
                table[id] = candidate
                reference[id] = candidate
            }
            for name in interfaces {
                XCTAssertEqual(
                    table.id(onInterface: name), reference.values.first { $0.interfaceName == name }?.id,
                    "step \(step): \(name)")
            }
            for text in v4 + v6 {
                let address = IPAddress(text)!
                XCTAssertEqual(
                    table.id(withAddress: address), reference.values.first { $0.addresses.contains(address) }?.id,
                    "step \(step): \(text)")
            }
            XCTAssertEqual(table.count, reference.count)
            XCTAssertEqual(
                Dictionary(uniqueKeysWithValues: table.map { ($0.key, $0.value.policyRevision) }),
                reference.mapValues(\.policyRevision), "step \(step): policy revisions")
        }
    }

    func testPolicyRevisionIsSetOnEveryEndpoint() {
        var table: EndpointTable = [1: endpoint(1, "lxc1", "10.0.0.1"), 2: endpoint(2, "lxc2", nil)]
        table.setPolicyRevision(5)
        XCTAssertEqual(table.values.map(\.policyRevision), [5, 5])
        XCTAssertEqual(table.id(onInterface: "lxc2"), 2)

        // Every way an endpoint can come to lack the revision: a new one, one written back with another, one
        // changed through the subscript. Each must be caught up by the next call, however the others stand.
        table[3] = endpoint(3, "lxc3", "10.0.0.3")
        table.setPolicyRevision(5)
        XCTAssertEqual(table.values.map(\.policyRevision), [5, 5, 5])
        var old = table[1]!
        old.policyRevision = 4
        table[1] = old
        table.setPolicyRevision(5)
        XCTAssertEqual(table[1]?.policyRevision, 5)
        table[2]?.policyRevision = 9
        table[3] = nil
        table.setPolicyRevision(5)
        XCTAssertEqual(table.values.map(\.policyRevision), [5, 5])
        table.setPolicyRevision(6)
        XCTAssertEqual(table.values.map(\.policyRevision), [6, 6])
        table[1] = nil
        table[2] = nil
        table.setPolicyRevision(7)
        table[4] = endpoint(4, "lxc4", nil)
        table.setPolicyRevision(7)
        XCTAssertEqual(table[4]?.policyRevision, 7)
    }
}
