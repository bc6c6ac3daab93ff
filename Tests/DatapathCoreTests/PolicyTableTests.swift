import CNodeABI
import DatapathCore
import Glibc
import XCTest

/// `na_ptable` in front of the endpoints' policy hashes, run through `from_endpoint`: a valid entry decides,
/// a complete endpoint's miss skips its hash, an incomplete one's goes on to it; and `PolicyTable` keeping it.
final class PolicyTableTests: XCTestCase {
    private var h: DatapathHarness!
    private var table: PolicyTable!
    private var states: TypedMap<UInt32, UInt32>!
    private var overflows: TypedMap<UInt32, UInt64>!
    private var portMap: BPFMap!
    private var peerMap: BPFMap!

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
        h = try DatapathHarness.shared()
        try h.reset()
        let map = try XCTUnwrap(h.object.map(named: PolicyTable.name))
        let stateMap = try XCTUnwrap(h.object.map(named: PolicyTable.stateName))
        let overflowMap = try XCTUnwrap(h.object.map(named: PolicyTable.overflowName))
        portMap = try XCTUnwrap(h.object.map(named: PolicyTable.portsName))
        peerMap = try XCTUnwrap(h.object.map(named: PolicyTable.peersName))
        table = try PolicyTable(
            table: map, states: stateMap, overflows: overflowMap, ports: portMap, peers: peerMap)
        states = try TypedMap(stateMap)
        overflows = try TypedMap(overflowMap)
        try Setup(policy: []).apply(to: h)
    }

    override func tearDownWithError() throws {
        guard let table else { return }
        // The harness's other fixtures find no entry of theirs here and every endpoint's misses going on to its hash.
        try table.clear(endpoint: Net.epID, keys: try table.entries().map { PolicyTable.policy(of: $0).key })
        try states.update(Net.epID, UInt32(NA_POLICY_TABLE_UNKNOWN))
        for word in try table.overflowedBuckets().map({ $0 / 64 }) { try overflows.update(word, 0) }
        try h.reset()
    }

    private func key(_ identity: UInt32, port: UInt16) -> na_policy_key {
        na_policy_key(
            prefixlen: UInt32(NA_POLICY_PREFIX_PORT), identity: identity.bigEndian,
            direction: UInt8(NA_DIR_EGRESS.rawValue), protocol: Proto.tcp, dport: port.bigEndian)
    }

    private func syn(port: UInt16, sport: UInt16) throws -> UInt32 {
        try h.run("from_endpoint", Packet.tcp(Net.ep4, Net.peer4, sport: sport, dport: port).bytes)
    }

    private func installHash(_ entries: [(na_policy_key, na_policy_value)]) throws {
        try h.installPolicy(
            endpoint: Net.epID,
            entries.map {
                var entry = PolicyEntry.egress(
                    UInt32(bigEndian: $0.0.identity), $0.0.protocol, UInt16(bigEndian: $0.0.dport),
                    deny: $0.1.flags != 0)
                entry.ruleID = $0.1.rule_id
                return entry
            })
    }

    func testAValidEntryDecidesAndACompleteEndpointsMissSkipsItsHash() throws {
        let allow = na_policy_value(rule_id: 7, flags: 0)
        // The hash allows 80 and 81; the table holds 80 only and says it holds everything: 81 is refused.
        try installHash([(key(Net.peerIdentity, port: 80), allow), (key(Net.peerIdentity, port: 81), allow)])
        try table.apply(endpoint: Net.epID, [(key(Net.peerIdentity, port: 80), allow)])
        try states.update(Net.epID, UInt32(NA_POLICY_TABLE_COMPLETE))
        XCTAssertEqual(try syn(port: 80, sport: 40001), Verdict.TC_ACT_OK)
        XCTAssertEqual(try syn(port: 81, sport: 40002), Verdict.TC_ACT_SHOT)
        // The bucket of 81's key marked as one a key found full: the miss goes on to the hash, which allows.
        let bits = na_policy_table_key(UInt8(NA_DIR_EGRESS.rawValue), Proto.tcp, UInt16(81).bigEndian)
        let bucket = na_policy_table_bucket_of(Net.epID, Net.peerIdentity, bits)
        try overflows.update(bucket / 64, 1 << UInt64(bucket % 64))
        XCTAssertEqual(try syn(port: 81, sport: 40003), Verdict.TC_ACT_OK)
        // So does every miss of an endpoint that is not complete (while the agent restores).
        try overflows.update(bucket / 64, 0)
        XCTAssertEqual(try syn(port: 81, sport: 40004), Verdict.TC_ACT_SHOT)
        try states.update(Net.epID, UInt32(NA_POLICY_TABLE_UNKNOWN))
        XCTAssertEqual(try syn(port: 81, sport: 40005), Verdict.TC_ACT_OK)
    }

    /// `na_ptable_ports`: a port no full-length key names skips the table and the hash once the map is complete, the
    /// trie's any-peer keys still count there, and `rebuild` leaves exactly the bits of the keys it is given.
    func testAPortNoFullLengthKeyNamesSkipsTheTableAndTheHash() throws {
        let allow = na_policy_value(rule_id: 9, flags: 0)
        let ports = try TypedMap<UInt32, UInt64>(portMap)
        let complete = UInt32(NA_POLICY_PORTS_COMPLETE)
        func bit(_ port: UInt16) -> UInt32 { PolicyTable.portBit(key(Net.peerIdentity, port: port)) }
        try h.installPolicy(
            endpoint: Net.epID,
            [
                PolicyEntry.egress(Net.peerIdentity, Proto.tcp, 80),
                PolicyEntry.egress(Net.peerIdentity, Proto.tcp, 82),
                PolicyEntry.egress(0, Proto.tcp, 83),
            ])
        try table.rebuild([Net.epID: [(key(Net.peerIdentity, port: 80), allow)]])
        XCTAssertEqual(try table.namedPorts().bits, [bit(80)])
        XCTAssertTrue(try table.namedPorts().complete)
        XCTAssertEqual(try syn(port: 80, sport: 41001), Verdict.TC_ACT_OK)
        XCTAssertEqual(try syn(port: 83, sport: 41002), Verdict.TC_ACT_OK, "any-peer keys are in the trie")

        // 82 is in the hash and, through apply, in the table with its bit set.
        try table.apply(endpoint: Net.epID, [(key(Net.peerIdentity, port: 82), allow)])
        XCTAssertEqual(try table.namedPorts().bits, [bit(80), bit(82)])
        XCTAssertEqual(try syn(port: 82, sport: 41003), Verdict.TC_ACT_OK)
        // Without its bit, the table and the hash that hold it are not read.
        try ports.update(bit(82) / 64, 1 << UInt64(bit(80) % 64))
        XCTAssertEqual(try syn(port: 82, sport: 41004), Verdict.TC_ACT_SHOT)
        // A map not complete (new on the node, or a restore under way) names every port.
        try table.suspend()
        XCTAssertFalse(try table.namedPorts().complete)
        XCTAssertEqual(try syn(port: 82, sport: 41005), Verdict.TC_ACT_OK)
        try ports.update(complete, 1)

        // A rebuild without 82 leaves 80's bit alone: the map is exact again.
        try ports.update(bit(82) / 64, (1 << UInt64(bit(80) % 64)) | (1 << UInt64(bit(82) % 64)))
        try table.rebuild([Net.epID: [(key(Net.peerIdentity, port: 80), allow)]])
        XCTAssertEqual(try table.namedPorts().bits, [bit(80)])
        XCTAssertEqual(try syn(port: 82, sport: 41006), Verdict.TC_ACT_SHOT)
        XCTAssertEqual(try syn(port: 80, sport: 41007), Verdict.TC_ACT_OK)
    }

    /// `na_ptable_peers`: on a named port, a peer no full-length key names skips the table and the hash once the
    /// filter is complete; `apply` sets a new pair's bits before its entry, and `rebuild` leaves exactly those of the
    /// keys it is given.
    func testAPeerNoFullLengthKeyNamesOnANamedPortSkipsTheTableAndTheHash() throws {
        let allow = na_policy_value(rule_id: 9, flags: 0)
        let peers = try TypedMap<UInt32, UInt64>(peerMap)
        // Another identity on port 80 whose bits do not cover the peer's (a Bloom filter may have them cover it).
        let mine = Set(PolicyTable.peerBits(key(Net.peerIdentity, port: 80)))
        let other = try XCTUnwrap(
            (Net.peerIdentity + 1...Net.peerIdentity + 100).first {
                !mine.isSubset(of: PolicyTable.peerBits(key($0, port: 80)))
            })
        let otherBits = PolicyTable.peerBits(key(other, port: 80))
        try installHash([(key(Net.peerIdentity, port: 80), allow), (key(other, port: 80), allow)])
        try table.rebuild([Net.epID: [(key(other, port: 80), allow)]])
        XCTAssertEqual(try table.namedPeers().bits, Set(otherBits).sorted())
        XCTAssertTrue(try table.namedPeers().complete)
        // The port is named, the peer on it is not: neither the table nor the hash that allows it is read, though
        // the endpoint's misses would go on to the hash.
        try states.update(Net.epID, UInt32(NA_POLICY_TABLE_UNKNOWN))
        XCTAssertEqual(try syn(port: 80, sport: 42001), Verdict.TC_ACT_SHOT)
        XCTAssertEqual(try h.drainEvents().last?.reason, UInt16(NA_DROP_POLICY.rawValue))

        // apply names the pair: its entry in the table decides.
        try table.apply(endpoint: Net.epID, [(key(Net.peerIdentity, port: 80), allow)])
        XCTAssertEqual(try table.namedPeers().bits, mine.union(otherBits).sorted())
        XCTAssertEqual(try syn(port: 80, sport: 42002), Verdict.TC_ACT_OK)
        // One of its two bits clear is enough to hide it.
        let hidden = try XCTUnwrap(mine.subtracting(otherBits).first)
        try peers.update(hidden / 64, try XCTUnwrap(peers.lookup(hidden / 64)) & ~(1 << UInt64(hidden % 64)))
        XCTAssertEqual(try syn(port: 80, sport: 42003), Verdict.TC_ACT_SHOT)
        // A filter not complete (new on the node, or a restore under way) names every pair.
        try table.suspend()
        XCTAssertFalse(try table.namedPeers().complete)
        XCTAssertEqual(try syn(port: 80, sport: 42004), Verdict.TC_ACT_OK)

        // A rebuild with the other identity only: the filter is exact again, and the peer hidden.
        try table.rebuild([Net.epID: [(key(other, port: 80), allow)]])
        XCTAssertEqual(try table.namedPeers().bits, Set(otherBits).sorted())
        try states.update(Net.epID, UInt32(NA_POLICY_TABLE_UNKNOWN))
        XCTAssertEqual(try syn(port: 80, sport: 42005), Verdict.TC_ACT_SHOT)
    }

    /// `refreshFilters` clears what withdrawn keys left in both filters and nothing a current key needs: the peer's
    /// key withdrawn, its SYN skips the table again; the ports and lines the leftovers do not name stay as they are.
    func testARefreshClearsWhatWithdrawnKeysLeftAndNothingACurrentKeyNeeds() throws {
        let allow = na_policy_value(rule_id: 9, flags: 0)
        let mine = Set(PolicyTable.peerBits(key(Net.peerIdentity, port: 80)))
        // Another identity on 80 whose bits do not cover the peer's, and one on 81 whose line is not 80's.
        let other = try XCTUnwrap(
            (Net.peerIdentity + 1...Net.peerIdentity + 100).first {
                !mine.isSubset(of: PolicyTable.peerBits(key($0, port: 80)))
            })
        let line80 = na_policy_peer_line(PolicyTable.portBit(key(other, port: 80)))
        let port = try XCTUnwrap(
            (UInt16(81)...UInt16(200)).first {
                na_policy_peer_line(PolicyTable.portBit(key(other, port: $0))) != line80
            })
        let keys = [key(Net.peerIdentity, port: 80), key(other, port: 80), key(other, port: port)]
        try table.rebuild([Net.epID: keys.map { ($0, allow) }])
        // The peer's key and the other port's withdrawn, and noted; the bits stay until the refresh.
        let withdrawn = [keys[0], keys[2]]
        try table.apply(endpoint: Net.epID, withdrawn.map { ($0, nil) })
        XCTAssertEqual(try table.namedPeers().bits, Set(keys.flatMap(PolicyTable.peerBits)).sorted())
        XCTAssertEqual(try table.namedPorts().bits, Set(keys.map(PolicyTable.portBit)).sorted())
        var leftovers = PolicyFilterLeftovers()
        leftovers.add(withdrawn: withdrawn)
        XCTAssertEqual(leftovers.peerLineCount, 2)

        // A refresh that visits the other identity's key on 80 only: exactly its bits are left, and the leftovers
        // are forgotten.
        let cleared = try table.refreshFilters(&leftovers) { visit in visit(keys[1]) }
        XCTAssertTrue(leftovers.isEmpty)
        XCTAssertEqual(try table.namedPeers().bits, Set(PolicyTable.peerBits(keys[1])).sorted())
        XCTAssertEqual(try table.namedPorts().bits, [PolicyTable.portBit(keys[1])])
        XCTAssertTrue(try table.namedPeers().complete)
        XCTAssertTrue(try table.namedPorts().complete)
        XCTAssertEqual(cleared.portWords, 1, "the word of the other port's bit")
        XCTAssertGreaterThanOrEqual(cleared.peerWords, 1)
        // The peer's SYN on 80 skips the table and the hash again, though its endpoint's misses would reach the hash
        // (which still allows it: only the filter can refuse it here).
        try installHash([(keys[0], allow), (keys[1], allow)])
        try states.update(Net.epID, UInt32(NA_POLICY_TABLE_UNKNOWN))
        XCTAssertEqual(try syn(port: 80, sport: 43001), Verdict.TC_ACT_SHOT)

        // A refresh never clears what a current key needs: the peer named again, a refresh of the same leftovers
        // that visits both keys keeps both.
        try table.apply(endpoint: Net.epID, [(keys[0], allow)])
        leftovers.add(withdrawn: withdrawn)
        try table.refreshFilters(&leftovers) { visit in
            visit(keys[0])
            visit(keys[1])
        }
        XCTAssertEqual(try table.namedPeers().bits, Set(keys.prefix(2).flatMap(PolicyTable.peerBits)).sorted())
        XCTAssertEqual(try syn(port: 80, sport: 43002), Verdict.TC_ACT_OK)

        // Leftovers note only what they note: the peer's key withdrawn again but not noted, a refresh of the other
        // port's line leaves 80's line as it is.
        try table.apply(endpoint: Net.epID, [(keys[0], nil)])
        var outside = PolicyFilterLeftovers()
        outside.add(withdrawn: [keys[2]])
        XCTAssertEqual(try table.refreshFilters(&outside) { visit in visit(keys[1]) }.peerWords, 0)
        XCTAssertEqual(try table.namedPeers().bits, Set(keys.prefix(2).flatMap(PolicyTable.peerBits)).sorted())
        XCTAssertEqual(try table.namedPorts().bits, [PolicyTable.portBit(keys[1])])
        // And a filter not complete (a restore under way) is left to the restore's rebuild.
        try table.suspend()
        leftovers.add(withdrawn: withdrawn)
        try table.refreshFilters(&leftovers) { _ in }
        XCTAssertEqual(try table.namedPeers().bits, Set(keys.prefix(2).flatMap(PolicyTable.peerBits)).sorted())
    }

    /// Leftovers over more lines than one pass of `refreshFilters` takes: every pass leaves exactly its lines' keys.
    func testARefreshOverManyLinesLeavesExactlyTheCurrentKeysBits() throws {
        let allow = na_policy_value(rule_id: 9, flags: 0)
        let keys = (UInt16(1000)..<UInt16(5000)).map { key(Net.peerIdentity + UInt32($0 % 7), port: $0) }
        try table.rebuild([Net.epID: keys.map { ($0, allow) }])
        let withdrawn = keys.filter { UInt16(bigEndian: $0.dport) % 2 == 1 }
        let kept = keys.filter { UInt16(bigEndian: $0.dport) % 2 == 0 }
        try table.apply(endpoint: Net.epID, withdrawn.map { ($0, nil) })
        var leftovers = PolicyFilterLeftovers()
        leftovers.add(withdrawn: withdrawn)
        XCTAssertGreaterThan(leftovers.peerLineCount, PolicyTable.refreshLines, "more than one pass")
        let passes = Set(withdrawn.map { Int(na_policy_peer_line(PolicyTable.portBit($0))) / PolicyTable.refreshLines })
        XCTAssertGreaterThan(passes.count, 1)
        var visits = 0
        let cleared = try table.refreshFilters(&leftovers) { visit in
            visits += 1
            kept.forEach(visit)
        }
        XCTAssertEqual(visits, 1 + passes.count, "one visit for the ports, one per pass of lines")
        XCTAssertEqual(cleared.portWords, Set(withdrawn.map { PolicyTable.portBit($0) / 64 }).count)
        XCTAssertEqual(try table.namedPorts().bits, Set(kept.map(PolicyTable.portBit)).sorted())
        XCTAssertEqual(try table.namedPeers().bits, Set(kept.flatMap(PolicyTable.peerBits)).sorted())
    }

    /// The filter is worth reading: 50 peers named on a port leave few of 10,000 others looking named there, and a
    /// port's pairs fall in one line of 8 words.
    func testFiftyNamedPeersLeaveFewOthersLookingNamed() {
        let named = (0..<UInt32(50)).map { key(300_000 + $0 * 17, port: 8080) }
        var bits = Set<UInt32>()
        for key in named { bits.formUnion(PolicyTable.peerBits(key)) }
        let lines = Set(bits.map { $0 / 512 })
        XCTAssertEqual(lines.count, 1, "one line per port")
        let others = (0..<UInt32(10_000)).map { key(500_000 + $0, port: 8080) }
        let lookNamed = others.count { Set(PolicyTable.peerBits($0)).isSubset(of: bits) }
        // Two bits of 512 per pair: about 3% expected.
        XCTAssertLessThan(lookNamed, 600, "\(lookNamed) of 10,000 unnamed peers look named")
        XCTAssertTrue(others.allSatisfy { Set(PolicyTable.peerBits($0).map { $0 / 64 }).count == 1 }, "one word")
    }

    func testTheTablesEntryWinsOverTheHashAndAWithdrawnOneCountsNoMore() throws {
        // The hash allows 80; the table denies it: the table is read first.
        try installHash([(key(Net.peerIdentity, port: 80), na_policy_value(rule_id: 7, flags: 0))])
        try table.apply(
            endpoint: Net.epID, [(key(Net.peerIdentity, port: 80), na_policy_value(rule_id: 9, flags: 1))])
        try states.update(Net.epID, UInt32(NA_POLICY_TABLE_COMPLETE))
        XCTAssertEqual(try syn(port: 80, sport: 40001), Verdict.TC_ACT_SHOT)
        XCTAssertEqual(try h.drainEvents().last?.rule_id, 9)
        // Withdrawn, and the endpoint no longer complete: the hash answers again.
        try states.update(Net.epID, UInt32(NA_POLICY_TABLE_UNKNOWN))
        try table.apply(endpoint: Net.epID, [(key(Net.peerIdentity, port: 80), nil)])
        XCTAssertEqual(try table.entries().count, 0)
        XCTAssertEqual(try syn(port: 80, sport: 40002), Verdict.TC_ACT_OK)
    }

    func testAChangedValueReplacesTheEntryAndAFullBucketMarksTheEndpoint() throws {
        try table.rebuild([:])
        XCTAssertEqual(try states.lookup(Net.epID), UInt32(NA_POLICY_TABLE_COMPLETE))
        try table.apply(endpoint: Net.epID, [(key(Net.peerIdentity, port: 80), na_policy_value(rule_id: 7, flags: 0))])
        try table.apply(endpoint: Net.epID, [(key(Net.peerIdentity, port: 80), na_policy_value(rule_id: 8, flags: 1))])
        XCTAssertEqual(
            try table.entries().map { [$0.identity, $0.ep_id, $0.rule_id, $0.meta & UInt32(NA_POLICY_TABLE_DENY)] },
            [[Net.peerIdentity, Net.epID, 8, UInt32(NA_POLICY_TABLE_DENY)]])

        // Five identities whose key on port 80 share one bucket: the fifth finds no room.
        let bits = na_policy_table_key(UInt8(NA_DIR_EGRESS.rawValue), Proto.tcp, UInt16(80).bigEndian)
        let target = na_policy_table_bucket_of(Net.epID, 1000, bits)
        var identities: [UInt32] = []
        var identity: UInt32 = 1000
        while identities.count < 5 {
            if na_policy_table_bucket_of(Net.epID, identity, bits) == target { identities.append(identity) }
            identity += 1
        }
        try table.apply(
            endpoint: Net.epID, identities.map { (key($0, port: 80), na_policy_value(rule_id: $0, flags: 0)) })
        XCTAssertEqual(try table.entries().count { $0.rule_id >= 1000 }, 4)
        XCTAssertEqual(try table.overflowedBuckets(), [target])

        // A start clears the bit when everything fits.
        try table.rebuild([
            Net.epID: identities.prefix(4).map { (key($0, port: 80), na_policy_value(rule_id: $0, flags: 0)) }
        ])
        XCTAssertEqual(try states.lookup(Net.epID), UInt32(NA_POLICY_TABLE_COMPLETE))
        XCTAssertEqual(try table.entries().count, 4)
        XCTAssertEqual(try table.overflowedBuckets(), [])
    }
}
