import AgentAPI
import DatapathCore
import Glibc
import XCTest

@testable import Agent

/// Maglev tables as the agent writes them (`SocketLoadBalancer` with `.maglev`), read by from_endpoint's service
/// translation, with BPF_PROG_TEST_RUN: flows spread over every backend, and removing one of ten backends moves
/// the flows of that backend and (almost) no others.
final class MaglevDatapathTests: XCTestCase {
    static let client = "10.0.1.5"
    static let frontend = ServiceFrontend(address: IPAddress("10.96.0.10")!, port: 80, proto: IPProtocol.tcp)

    private var object: BPFObject!
    private var balancer: SocketLoadBalancer!

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
        object = try TestRunEndpoint.load(
            client: Self.client,
            maxEntries: ["na_ct": 8192, "na_lb_flows": 8192, "na_ipcache": 64, "na_endpoints": 8, "na_policy": 8])
        balancer = try SocketLoadBalancer(object: object)
        try balancer.useBackendSelection(.maglev(tableSize: BackendSelection.defaultMaglevTableSize))
    }

    private func map(_ name: String) throws -> BPFMap { try XCTUnwrap(object.map(named: name), name) }

    private func service(_ backends: [Int], weights: [Int: UInt16] = [:]) -> LoadBalancedService {
        LoadBalancedService(
            id: 7, frontend: Self.frontend,
            backends: backends.map {
                ServiceBackend(address: IPAddress("10.0.5.\($0)")!, port: 8080, weight: weights[$0] ?? 1)
            })
    }

    /// A SYN from the client to the frontend.
    private func syn(sport: UInt16) -> [UInt8] {
        TestRunEndpoint.syn(from: Self.client, to: Self.frontend.address, sport: sport, dport: Self.frontend.port)
    }

    /// The backend (last address byte) each of `count` new flows went to, by client port.
    private func run(flows count: Int) throws -> [UInt16: UInt8] {
        // Forget earlier flows: each SYN must be a new flow choosing through the table.
        for name in ["na_lb_flows", "na_ct"] {
            let map = try map(name)
            for key in try map.keys() { try map.delete(key: key) }
        }
        let program = try XCTUnwrap(object.program(named: "from_endpoint"))
        var chosen: [UInt16: UInt8] = [:]
        for sport in UInt16(20000)..<UInt16(20000 + count) {
            let result = try program.testRun(packet: syn(sport: sport))
            XCTAssertEqual(result.retval, 0, "flow from port \(sport) passes")
            XCTAssertEqual(Array(result.packetOut[30..<33]), [10, 0, 5], "flow from port \(sport) went to a backend")
            chosen[sport] = result.packetOut[33]
        }
        return chosen
    }

    func testRemovingOneOfTenBackendsMovesOnlyTheFlowsOfThatBackend() throws {
        try balancer.apply(service(Array(1...10)))
        let before = try run(flows: 1000)
        XCTAssertEqual(try run(flows: 1000), before, "the same table sends the same new flows to the same backends")
        let perBackend = before.values.reduce(into: [UInt8: Int]()) { $0[$1, default: 0] += 1 }
        XCTAssertEqual(Set(perBackend.keys), Set(1...10), "every backend takes flows")
        for (backend, flows) in perBackend {
            XCTAssertTrue((50...150).contains(flows), "backend \(backend) took \(flows) of 1000 flows")
        }

        try balancer.apply(service(Array(1...10).filter { $0 != 4 }))
        let after = try run(flows: 1000)
        var moved = 0
        for (sport, backend) in before {
            if backend == 4 {
                XCTAssertNotEqual(after[sport], 4, "a flow of the removed backend found another")
            } else if after[sport] != backend {
                moved += 1
            }
        }
        // Removing one of ten backends changes 78 of the 14743 positions (0.5%) of the nine that stay
        // (MaglevTests): Maglev's tables are close to minimally disruptive, not exactly so (the paper, section
        // 3.4). Which flows land on those positions depends on the flow hash: 10 of these 907 flows do. 2% is
        // the bound, where a random choice would move 90%.
        XCTAssertLessThanOrEqual(moved, 18, "\(moved) flows of staying backends moved")
        print(
            "maglev: backend 4 of 10 removed, \(moved) of \(before.values.filter { $0 != 4 }.count) other flows moved")
    }

    func testWeightsOneToThreeSplitFlowsAboutOneToThree() throws {
        try balancer.apply(service([1, 2], weights: [1: 1, 2: 3]))
        let chosen = try run(flows: 1000)
        let light = chosen.values.filter { $0 == 1 }.count
        XCTAssertTrue((180...320).contains(light), "weight 1 of 4 took \(light) of 1000 flows")
    }

    func testTablesFollowTheServiceAndGoWithIt() throws {
        let tables = try TypedMap<UInt32, UInt32>(map("na_lb_maglev"))
        try balancer.apply(service([1, 2, 3]))
        XCTAssertEqual(try tables.map.keys().count, 1, "the service has a table")
        try balancer.apply(service([1, 2, 3], weights: [1: 0, 2: 0, 3: 0]))
        XCTAssertEqual(try tables.map.keys().count, 0, "no backend takes new flows: no table")
        try balancer.apply(service([1, 2, 3]))
        try balancer.remove(service([1, 2, 3]))
        XCTAssertEqual(try tables.map.keys().count, 0, "a removed service takes its table along")

        try balancer.apply(service([1, 2, 3]))
        try balancer.useBackendSelection(.random)
        XCTAssertEqual(try tables.map.keys().count, 0, "random selection keeps no tables")
        let chosen = try run(flows: 300)
        XCTAssertEqual(Set(chosen.values), [1, 2, 3], "random slots still reach every backend")
    }

    /// The map is pinned: a restarted agent finds the tables of its previous run. Unless it chooses Maglev again,
    /// none of them may keep choosing: a change to the service takes its table out, `.random` takes them all.
    func testTablesAnEarlierRunLeftGoUnlessMaglevIsChosenAgain() throws {
        let tables = try TypedMap<UInt32, UInt32>(map("na_lb_maglev"))
        try balancer.apply(service([1, 2, 3]))
        var other = service([1, 2])
        other.id = 8
        other.frontend.port = 81
        try balancer.apply(other)
        XCTAssertEqual(try tables.map.keys().count, 2)

        let restarted = try SocketLoadBalancer(object: object)
        try restarted.apply(service([1, 2]))
        XCTAssertNil(try tables.lookup(7), "the changed service's old table is gone")
        XCTAssertNotNil(try tables.lookup(8), "an unchanged service's table waits for the choice of selection")
        try restarted.useBackendSelection(.random)
        XCTAssertEqual(try tables.map.keys().count, 0)
    }

    func testATableSizeThatIsNotPrimeIsRefused() throws {
        XCTAssertThrowsError(try balancer.useBackendSelection(.maglev(tableSize: 16383))) { error in
            XCTAssertEqual((error as? AgentError)?.field, "maglev-table-size")
        }
    }
}
