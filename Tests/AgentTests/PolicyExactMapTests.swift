import AgentAPI
import CNodeABI
import DatapathCore
import Glibc
import Policy
import XCTest

@testable import Agent

/// `EndpointDatapath`'s two policy maps per endpoint on real pinned kernel maps: full-length keys in the hash,
/// the rest in the trie, read back as one policy, an older agent's trie adopted, both removed with the endpoint.
final class PolicyExactMapTests: XCTestCase {
    private var pinRoot = ""
    private var datapath: Datapath!

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("pinning BPF maps needs root") }
        pinRoot = "/sys/fs/bpf/nodeagent-test-polexact-\(String(format: "%04x", UInt32.random(in: 0...0xffff)))"
        datapath = try Datapath(root: pinRoot, maxEntries: ["na_ipcache": 1024, "na_ipcache_host": 1024])
    }

    override func tearDown() {
        datapath = nil
        if !pinRoot.isEmpty { BPFFS.removeAll(root: pinRoot) }
    }

    private func entry(_ identity: UInt32, _ proto: UInt8, _ port: UInt16, bits: UInt8, deny: Bool = false)
        -> PolicyEntry
    {
        PolicyEntry(
            identity: identity, direction: .egress, proto: proto, port: port, portPrefixBits: bits, deny: deny,
            ruleIDs: [7])
    }

    func testFullLengthKeysGoToTheHashAndReadBackWithTheTrie() throws {
        let endpoints = EndpointDatapath(datapath: datapath, policyMapEntries: 64)
        let exact = entry(300, 6, 80, bits: 16)
        let anyPeer = entry(0, 6, 443, bits: 16, deny: true)
        let range = entry(300, 6, 7936, bits: 8)
        let anyPort = entry(400, 17, 0, bits: 0)
        try endpoints.applyPolicy(5, add: [exact, anyPeer, range, anyPort], remove: [])

        let trie = try XCTUnwrap(try endpoints.policyMap(5, create: false))
        let hash = try XCTUnwrap(try endpoints.exactPolicyMap(5))
        XCTAssertEqual(
            Set(try hash.entries().map { PolicyMapLayout.entry(key: $0.key, value: $0.value) }),
            [exact])
        XCTAssertEqual(
            Set(try trie.entries().map { PolicyMapLayout.entry(key: $0.key, value: $0.value) }),
            [range, anyPort, anyPeer])
        XCTAssertEqual(try endpoints.realizedPolicy(5), PolicyMapEntries([exact, anyPeer, range, anyPort]))

        try endpoints.applyPolicy(5, add: [], remove: [exact.key, range.key])
        XCTAssertEqual(try endpoints.realizedPolicy(5), PolicyMapEntries([anyPeer, anyPort]))

        try endpoints.removePolicyMap(5)
        XCTAssertNil(try endpoints.policyMap(5, create: false))
        XCTAssertNil(try endpoints.exactPolicyMap(5))
        XCTAssertNil(try TypedMap<UInt32, UInt32>(datapath.map(PolicyMapLayout.exactOuterMap)).lookup(5))
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: "\(pinRoot)/\(PolicyMapLayout.exactMapName(endpoint: 5))"))
    }

    func testAnOlderAgentsTrieIsMovedIntoTheHashAndRemovesReachBoth() throws {
        let endpoints = EndpointDatapath(datapath: datapath, policyMapEntries: 64)
        let exact = entry(300, 6, 80, bits: 16)
        let other = entry(301, 6, 80, bits: 16)
        let range = entry(300, 6, 7936, bits: 8)
        // As an agent without the hash wrote them: everything in the trie.
        let trie = try XCTUnwrap(try endpoints.policyMap(6))
        for item in [exact, other, range] {
            try trie.update(PolicyMapLayout.key(item.key), PolicyMapLayout.value(item))
        }
        XCTAssertNil(try endpoints.exactPolicyMap(6))
        XCTAssertEqual(try endpoints.realizedPolicy(6), PolicyMapEntries([exact, other, range]))
        // A remove of a full-length key before the move reaches the trie's copy.
        try endpoints.applyPolicy(6, add: [], remove: [other.key])
        XCTAssertEqual(try endpoints.realizedPolicy(6), PolicyMapEntries([exact, range]))

        XCTAssertEqual(try endpoints.moveExactEntriesOutOfTrie(6), 1)
        XCTAssertEqual(Set(try trie.entries().map { PolicyMapLayout.entry(key: $0.key, value: $0.value) }), [range])
        XCTAssertEqual(try endpoints.realizedPolicy(6), PolicyMapEntries([exact, range]))
        XCTAssertEqual(try endpoints.moveExactEntriesOutOfTrie(6), 0)
    }

    func testTheHashIsSizedToWhatItHoldsAndGrowsWithoutLosingEntries() throws {
        let endpoints = EndpointDatapath(datapath: datapath, policyMapEntries: 1024)
        let first = (0..<20).map { entry(1000 + UInt32($0), 6, 80, bits: 16) }
        try endpoints.applyPolicy(7, add: first, remove: [])
        XCTAssertEqual(try XCTUnwrap(try endpoints.exactPolicyMap(7)).map.info.maxEntries, 64)

        let more = (20..<300).map { entry(1000 + UInt32($0), 6, 80, bits: 16) }
        try endpoints.applyPolicy(7, add: more, remove: [])
        let grown = try XCTUnwrap(try endpoints.exactPolicyMap(7))
        XCTAssertEqual(grown.map.info.maxEntries, 1024)
        let outer = try TypedMap<UInt32, UInt32>(datapath.map(PolicyMapLayout.exactOuterMap))
        XCTAssertEqual(try outer.lookup(7), grown.map.info.id)
        let pin = "\(pinRoot)/\(PolicyMapLayout.exactMapName(endpoint: 7))"
        XCTAssertEqual(try BPFMap.openPinned(pin)?.info.id, grown.map.info.id)
        XCTAssertEqual(try endpoints.realizedPolicy(7), PolicyMapEntries(first + more))
    }

    /// Grown by the caller's count of what the hash holds, without counting in the kernel; a count that falls
    /// short leaves the hash full, and the writes grow it then, losing nothing.
    func testGrowthByTheCallersCountAndByAFullHash() throws {
        let endpoints = EndpointDatapath(datapath: datapath, policyMapEntries: 1024)
        let first = (0..<60).map { entry(1000 + UInt32($0), 6, 80, bits: 16) }
        try endpoints.applyPolicy(8, add: first, remove: [])
        XCTAssertEqual(try XCTUnwrap(try endpoints.exactPolicyMap(8)).map.info.maxEntries, 128)

        let second = (60..<140).map { entry(1000 + UInt32($0), 6, 80, bits: 16) }
        try endpoints.growExactPolicyMaps([(8, second.count, 60)])
        XCTAssertEqual(try XCTUnwrap(try endpoints.exactPolicyMap(8)).map.info.maxEntries, 512)
        try endpoints.applyPolicy(8, add: second, remove: [], grown: true)

        // Told the hash is empty: no growth, so the writes find it full after 372 more.
        let third = (140..<540).map { entry(1000 + UInt32($0), 6, 80, bits: 16) }
        try endpoints.growExactPolicyMaps([(8, third.count, 0)])
        XCTAssertEqual(try XCTUnwrap(try endpoints.exactPolicyMap(8)).map.info.maxEntries, 512)
        try endpoints.applyPolicy(8, add: third, remove: [], grown: true)
        XCTAssertEqual(try XCTUnwrap(try endpoints.exactPolicyMap(8)).map.info.maxEntries, 1024)
        XCTAssertEqual(try endpoints.realizedPolicy(8), PolicyMapEntries(first + second + third))
    }

    /// The policy table (`na_ptable`) as `applyPolicy`, `clearPolicyMaps` and a restore's `rebuild` leave it: the
    /// endpoint's full-length keys, values as in its hash, and nothing of an endpoint whose maps are emptied.
    func testThePolicyTableHoldsWhatTheHashHolds() throws {
        let endpoints = EndpointDatapath(datapath: datapath, policyMapEntries: 64)
        let table = try endpoints.policyTable
        let states: TypedMap<UInt32, UInt32> = try datapath.typedMap(PolicyTable.stateName)
        func held(_ id: UInt32) throws -> Set<[UInt32]> {
            Set(try table.entries().filter { $0.ep_id == id }.map { [$0.identity, $0.rule_id, $0.meta] })
        }
        func row(_ item: PolicyEntry) -> [UInt32] {
            let key = PolicyMapLayout.key(item.key)
            let meta = na_policy_table_key(key.direction, key.protocol, key.dport)
            return [item.identity, item.ruleID, meta | UInt32(NA_POLICY_TABLE_VALID)]
        }
        try table.rebuild([:])
        let exact = entry(300, 6, 80, bits: 16)
        let other = entry(301, 17, 53, bits: 16)
        let range = entry(300, 6, 7936, bits: 8)
        try endpoints.applyPolicy(9, add: [exact, other, range], remove: [])
        XCTAssertEqual(try held(9), [row(exact), row(other)])
        XCTAssertEqual(try states.lookup(9), UInt32(NA_POLICY_TABLE_COMPLETE))
        // The ports of the full-length keys are named (the range's is not: it is in the trie).
        XCTAssertEqual(
            try table.namedPorts().bits,
            [exact, other].map { PolicyTable.portBit(PolicyMapLayout.key($0.key)) }.sorted())
        XCTAssertTrue(try table.namedPorts().complete)

        // A changed rule replaces the entry; a removed key leaves.
        var changed = exact
        changed.ruleIDs = [8]
        try endpoints.applyPolicy(9, add: [changed], remove: [other.key])
        XCTAssertEqual(try held(9), [row(changed)])

        // Emptied for the next endpoint under the id: nothing of it is left, and the id is complete.
        XCTAssertTrue(try endpoints.clearPolicyMaps(9))
        XCTAssertEqual(try held(9), [])
        XCTAssertEqual(try states.lookup(9), UInt32(NA_POLICY_TABLE_COMPLETE))

        // A restore suspends the table, then makes it what the endpoints' policies hold.
        try endpoints.applyPolicy(10, add: [exact], remove: [])
        try table.suspend()
        XCTAssertEqual(try states.lookup(10), UInt32(NA_POLICY_TABLE_UNKNOWN))
        XCTAssertEqual(try table.rebuild([11: [(PolicyMapLayout.key(other.key), PolicyMapLayout.value(other))]]), 1)
        XCTAssertEqual(try held(10), [])
        XCTAssertEqual(try held(11), [row(other)])
        XCTAssertEqual(try states.lookup(10), UInt32(NA_POLICY_TABLE_COMPLETE))
    }

    private func portKey(_ direction: na_direction, _ proto: UInt8, _ port: UInt16) -> na_policy_key {
        na_policy_key(
            prefixlen: UInt32(NA_POLICY_PREFIX_PORT), identity: UInt32(1000).bigEndian,
            direction: UInt8(direction.rawValue),
            protocol: proto, dport: port.bigEndian)
    }

    /// The policy table's port filter through `GET /v1/map/na_ptable_ports`: the ports the keys name, with their
    /// direction and protocol, and the word that says the map is complete.
    func testTheNamedPortsReadBackWithTheirDirectionAndProtocol() throws {
        CoreMapDecoders.register(on: datapath, ruleName: { _ in nil })
        let allow = na_policy_value(rule_id: 1, flags: 0)
        try PolicyTable(datapath: datapath).rebuild([
            7: [
                (portKey(NA_DIR_EGRESS, IPProtocol.tcp, 8080), allow),
                (portKey(NA_DIR_INGRESS, IPProtocol.udp, 53), allow),
                (portKey(NA_DIR_INGRESS, IPProtocol.icmp, 8), allow),
            ]
        ])
        let response = Router(routes: MapRoutes(datapath: datapath).routes).route(
            APIRequest(method: .GET, path: "/v1/map/na_ptable_ports", query: [:]))
        XCTAssertEqual(response.status, 200)
        let entries = try JSON.parse(response.body)["entries"]?.arrayValue ?? []
        let ports = entries.flatMap { $0["value"]?["ports"]?.arrayValue ?? [] }.map {
            "\($0["direction"]?.stringValue ?? "?") \($0["protocol"]?.stringValue ?? "?") \($0["port"]?.intValue ?? -1)"
        }
        XCTAssertEqual(Set(ports), ["egress TCP 8080", "ingress UDP 53", "ingress other 8"])
        XCTAssertEqual(entries.filter { $0["value"]?["complete"] == .bool(true) }.count, 1)
        XCTAssertEqual(entries.count, 4, "three words with a port, and the complete word")
    }

    /// The overflowed buckets through `GET /v1/map/na_ptable_ovf`: each word with a bit set, as its buckets.
    func testOverflowedBucketsReadBackByTheirWord() throws {
        CoreMapDecoders.register(on: datapath, ruleName: { _ in nil })
        try TypedMap<UInt32, UInt64>(datapath.map(PolicyTable.overflowName)).update(3, 1 << 5 | 1 << 63)
        let response = Router(routes: MapRoutes(datapath: datapath).routes).route(
            APIRequest(method: .GET, path: "/v1/map/na_ptable_ovf", query: [:]))
        XCTAssertEqual(response.status, 200)
        let entries = try JSON.parse(response.body)["entries"]?.arrayValue ?? []
        XCTAssertEqual(entries.count, 1, "words without a bit set are left out")
        XCTAssertEqual(entries.first?["key"]?["word"], .int(3))
        let buckets = (entries.first?["value"]?["buckets"]?.arrayValue ?? []).compactMap(\.intValue)
        XCTAssertEqual(buckets, [197, 255], "bits 5 and 63 of word 3")
    }

    /// The peer filter through `GET /v1/map/na_ptable_peers`: exactly the bits of the keys' (port, peer) pairs, and
    /// the word that says the map is complete.
    func testTheNamedPeersReadBackAsTheirBits() throws {
        CoreMapDecoders.register(on: datapath, ruleName: { _ in nil })
        let allow = na_policy_value(rule_id: 1, flags: 0)
        let keys = [portKey(NA_DIR_EGRESS, IPProtocol.tcp, 8080), portKey(NA_DIR_INGRESS, IPProtocol.udp, 53)]
        try PolicyTable(datapath: datapath).rebuild([7: keys.map { ($0, allow) }])
        let response = Router(routes: MapRoutes(datapath: datapath).routes).route(
            APIRequest(method: .GET, path: "/v1/map/na_ptable_peers", query: [:]))
        XCTAssertEqual(response.status, 200)
        let entries = try JSON.parse(response.body)["entries"]?.arrayValue ?? []
        let bits = entries.flatMap { $0["value"]?["bits"]?.arrayValue ?? [] }.compactMap { $0.intValue }
        XCTAssertEqual(Set(bits), Set(keys.flatMap(PolicyTable.peerBits).map { Int64($0) }))
        XCTAssertEqual(entries.filter { $0["value"]?["complete"] == .bool(true) }.count, 1)
    }

    /// The policy blocks through `GET /v1/map/na_ptable_bits`: each valid block as its endpoint's key and verdict,
    /// with the identities whose bits are set; a key of another rule in the same group is no bit of the block.
    func testPolicyBlocksReadBackAsTheirKeyAndIdentities() throws {
        CoreMapDecoders.register(on: datapath, ruleName: { $0 == 4 ? "web" : nil })
        func key(_ identity: UInt32) -> na_policy_key {
            na_policy_key(
                prefixlen: UInt32(NA_POLICY_PREFIX_PORT), identity: identity.bigEndian,
                direction: UInt8(NA_DIR_INGRESS.rawValue), protocol: IPProtocol.tcp, dport: UInt16(80).bigEndian)
        }
        let web = na_policy_value(rule_id: 4, flags: 0)
        try PolicyTable(datapath: datapath).rebuild([
            7: [(key(1000), web), (key(1001), web), (key(1002), na_policy_value(rule_id: 5, flags: 0))]
        ])
        let response = Router(routes: MapRoutes(datapath: datapath).routes).route(
            APIRequest(method: .GET, path: "/v1/map/na_ptable_bits", query: [:]))
        XCTAssertEqual(response.status, 200)
        let entries = try JSON.parse(response.body)["entries"]?.arrayValue ?? []
        XCTAssertEqual(entries.count, 1, "free slots are left out")
        let value = try XCTUnwrap(entries.first?["value"])
        XCTAssertEqual(value["endpoint-id"], .int(7))
        XCTAssertEqual(value["direction"], "ingress")
        XCTAssertEqual(value["protocol"], "TCP")
        XCTAssertEqual(value["port"], .int(80))
        XCTAssertEqual(value["verdict"], "allow")
        XCTAssertEqual(value["rule"], "web")
        XCTAssertEqual(value["identities"], .array([.int(1000), .int(1001)]))
        XCTAssertEqual(
            entries.first?["key"]?["slot"],
            .int(Int64(na_policy_block_of(7, 1000, na_policy_table_key(0, IPProtocol.tcp, UInt16(80).bigEndian)))))
    }
}
