import CNodeABI
import DatapathCore
import Glibc
import Synchronization
import XCTest

/// `na_ptable_bits` in front of `na_ptable`, run through `from_endpoint`: a block's bit decides with the block's
/// rule and verdict, a clear bit or another tag's block leaves the key to the table; and `PolicyTable` keeping the
/// blocks with the hash (bits set after a key is written, cleared before it leaves or changes, slots reused only
/// after a grace period, withdrawn at a restore's start and written again by its rebuild).
final class PolicyBlocksTests: XCTestCase {
    private var h: DatapathHarness!
    private var table: PolicyTable!
    private var blockMap: TypedMap<UInt32, na_policy_block>!

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
        h = try DatapathHarness.shared()
        try h.reset()
        let map = try XCTUnwrap(h.object.map(named: PolicyBlocks.name))
        table = try PolicyTable(
            table: XCTUnwrap(h.object.map(named: PolicyTable.name)),
            states: XCTUnwrap(h.object.map(named: PolicyTable.stateName)),
            overflows: XCTUnwrap(h.object.map(named: PolicyTable.overflowName)), ports: nil, peers: nil,
            blocks: map)
        blockMap = try TypedMap(map)
        // Allowed flows report their rule: which entry decided.
        try Setup(policy: [], config: configured(flags: UInt32(NA_CFG_EVENTS_ALLOWED))).apply(to: h)
    }

    override func tearDownWithError() throws {
        guard let table else { return }
        // The harness's other fixtures find no entry or block of theirs here.
        try table.clear(endpoint: Net.epID, keys: try table.entries().map { PolicyTable.policy(of: $0).key })
        try blockMap.map.fill(bytesOf(na_policy_block()))
        try TypedMap<UInt32, UInt32>(XCTUnwrap(h.object.map(named: PolicyTable.stateName)))
            .update(Net.epID, UInt32(NA_POLICY_TABLE_UNKNOWN))
        try h.reset()
    }

    private func key(_ identity: UInt32, port: UInt16 = 80) -> na_policy_key {
        na_policy_key(
            prefixlen: UInt32(NA_POLICY_PREFIX_PORT), identity: identity.bigEndian,
            direction: UInt8(NA_DIR_EGRESS.rawValue), protocol: Proto.tcp, dport: port.bigEndian)
    }

    /// The SYN's verdict and, when it is allowed, the rule its flow reports.
    private func syn(port: UInt16 = 80, sport: UInt16) throws -> (verdict: UInt32, rule: UInt32?) {
        _ = try h.drainEvents()
        let verdict = try h.run("from_endpoint", Packet.tcp(Net.ep4, Net.peer4, sport: sport, dport: port).bytes)
        return (verdict, try h.drainEvents().last?.rule_id)
    }

    private func installHash(_ entries: [(key: na_policy_key, value: na_policy_value)]) throws {
        try h.installPolicy(
            endpoint: Net.epID,
            entries.map {
                var entry = PolicyEntry.egress(
                    UInt32(bigEndian: $0.key.identity), $0.key.protocol, UInt16(bigEndian: $0.key.dport),
                    deny: $0.value.flags != 0)
                entry.ruleID = $0.value.rule_id
                return entry
            })
    }

    /// A block of `key`'s tag with `bits` set (identities), written as the agent would not: to show what a program
    /// takes from it.
    private func writeBlock(for key: na_policy_key, rule: UInt32, deny: Bool = false, identities: [UInt32]) throws {
        let place = PolicyBlocks.place(endpoint: Net.epID, key)
        var block = na_policy_block()
        block.meta = place.key | UInt32(NA_POLICY_TABLE_VALID) | (deny ? UInt32(NA_POLICY_TABLE_DENY) : 0)
        block.ep_id = Net.epID
        block.group = place.group
        block.rule_id = rule
        withUnsafeMutableBytes(of: &block.bits) { raw in
            for identity in identities {
                let offset = Int((identity & 255) / 64) * 8
                let word = raw.load(fromByteOffset: offset, as: UInt64.self) | 1 << UInt64(identity % 64)
                raw.storeBytes(of: word, toByteOffset: offset, as: UInt64.self)
            }
        }
        try blockMap.update(place.slot, block)
    }

    /// What the valid blocks hold: by (endpoint, key, group), the rule and the identities whose bits are set.
    private func blocks() throws -> [String: String] {
        var result: [String: String] = [:]
        for (_, block) in try table.validBlocks() {
            let tag = "\(block.ep_id)/\(block.meta & UInt32(NA_POLICY_TABLE_KEY_MASK))/\(block.group)"
            let deny = block.meta & UInt32(NA_POLICY_TABLE_DENY) != 0 ? " deny" : ""
            result[tag] = "rule \(block.rule_id)\(deny): \(PolicyBlocks.identities(of: block))"
        }
        return result
    }

    private func tag(_ identity: UInt32, port: UInt16 = 80) -> String {
        let place = PolicyBlocks.place(endpoint: Net.epID, key(identity, port: port))
        return "\(Net.epID)/\(place.key)/\(place.group)"
    }

    func testABlocksBitDecidesWithItsRuleAndAClearBitOrAnotherGroupLeavesTheKeyToTheTable() throws {
        // The hash allows the peer under rule 7; the table holds nothing, and the endpoint's misses go on to the hash.
        try installHash([(key(Net.peerIdentity), na_policy_value(rule_id: 7, flags: 0))])
        XCTAssertEqual(try syn(sport: 43001).rule, 7)
        // A block of the peer's tag with its bit: its rule is the flow's, and its deny drops, whatever the hash says.
        try writeBlock(for: key(Net.peerIdentity), rule: 99, identities: [Net.peerIdentity])
        XCTAssertEqual(try syn(sport: 43002).verdict, Verdict.TC_ACT_OK)
        XCTAssertEqual(try syn(sport: 43003).rule, 99)
        try writeBlock(for: key(Net.peerIdentity), rule: 99, deny: true, identities: [Net.peerIdentity])
        XCTAssertEqual(try syn(sport: 43004).verdict, Verdict.TC_ACT_SHOT)
        // Its bit clear (another peer's set): the hash decides.
        try writeBlock(for: key(Net.peerIdentity), rule: 99, deny: true, identities: [Net.peerIdentity + 1])
        XCTAssertEqual(try syn(sport: 43005).rule, 7)
        // A block of the same slot and bit for another group: not the peer's.
        var other = try XCTUnwrap(blockMap.lookup(PolicyBlocks.place(endpoint: Net.epID, key(Net.peerIdentity)).slot))
        other.group += 1
        withUnsafeMutableBytes(of: &other.bits) { raw in
            for word in 0..<4 { raw.storeBytes(of: UInt64.max, toByteOffset: word * 8, as: UInt64.self) }
        }
        try blockMap.update(PolicyBlocks.place(endpoint: Net.epID, key(Net.peerIdentity)).slot, other)
        XCTAssertEqual(try syn(sport: 43006).rule, 7)
        // Nor one whose valid bit is clear (withdrawn, stale).
        other.group -= 1
        other.meta = (other.meta & ~UInt32(NA_POLICY_TABLE_VALID)) | UInt32(NA_POLICY_TABLE_STALE)
        try blockMap.update(PolicyBlocks.place(endpoint: Net.epID, key(Net.peerIdentity)).slot, other)
        XCTAssertEqual(try syn(sport: 43007).rule, 7)
    }

    /// One rule over 300 identities of two groups: two blocks hold all of them; a key whose rule or verdict changes
    /// leaves its block, and so does a removed key (its SYN then refused), and a block left empty is withdrawn.
    func testApplyKeepsEachGroupsBitsWithTheHash() throws {
        let rule = na_policy_value(rule_id: 5, flags: 0)
        let identities = Array(UInt32(300)..<UInt32(600))
        let entries = identities.map { (key: key($0), value: rule) }
        try installHash(entries)
        try table.apply(endpoint: Net.epID, entries.map { ($0.key, $0.value) })
        XCTAssertEqual(
            try blocks(),
            [
                tag(300): "rule 5: \(Array(UInt32(300)..<UInt32(512)))",
                tag(512): "rule 5: \(Array(UInt32(512)..<UInt32(600)))",
            ])
        XCTAssertEqual(try syn(sport: 44001).rule, 5)

        // The peer's key (300) changes to rule 6: its bit is cleared, the table answers with the new rule. Another
        // key becomes a deny of rule 5: a verdict the block does not have, so it leaves too.
        var changed = entries
        changed[0].value = na_policy_value(rule_id: 6, flags: 0)
        changed[1].value = na_policy_value(rule_id: 5, flags: UInt32(NA_POLICY_DENY))
        try installHash(changed)
        try table.apply(endpoint: Net.epID, [(changed[0].key, changed[0].value), (changed[1].key, changed[1].value)])
        XCTAssertEqual(try blocks()[tag(300)], "rule 5: \(Array(UInt32(302)..<UInt32(512)))")
        XCTAssertEqual(try syn(sport: 44002).rule, 6)

        // Removed from the table before the hash: no bit, no entry, and once the hash lets go the SYN is refused.
        try table.apply(endpoint: Net.epID, [(changed[0].key, nil)])
        try installHash(Array(changed.dropFirst()))
        XCTAssertEqual(try syn(sport: 44003).verdict, Verdict.TC_ACT_SHOT)

        // The second group's keys all removed: its block is withdrawn.
        try table.apply(endpoint: Net.epID, entries.suffix(88).map { ($0.key, nil) })
        XCTAssertEqual(Array(try blocks().keys), [tag(300)])
        let place = PolicyBlocks.place(endpoint: Net.epID, key(512))
        XCTAssertEqual(try XCTUnwrap(blockMap.lookup(place.slot)).meta, UInt32(NA_POLICY_TABLE_STALE) | place.key)
    }

    /// Slots go first come: a tag whose slot another holds is left to the table (its SYN still allowed); once the
    /// holder's last bit clears, the slot is withdrawn, and after a grace period the next key claims it.
    func testAnotherTagsSlotIsLeftToTheTableUntilItsHolderIsWithdrawn() throws {
        let rule = na_policy_value(rule_id: 5, flags: 0)
        let slot = PolicyBlocks.place(endpoint: Net.epID, key(Net.peerIdentity)).slot
        // A port whose key, for the same peer, lands in the same slot.
        let port = try XCTUnwrap(
            (UInt16(81)...UInt16(60000)).first {
                PolicyBlocks.place(endpoint: Net.epID, key(Net.peerIdentity, port: $0)).slot == slot
            })
        try installHash([(key(Net.peerIdentity, port: port), rule), (key(Net.peerIdentity), rule)])
        try table.apply(endpoint: Net.epID, [(key(Net.peerIdentity, port: port), rule)])
        try table.apply(endpoint: Net.epID, [(key(Net.peerIdentity), rule)])
        XCTAssertEqual(Array(try blocks().keys), [tag(Net.peerIdentity, port: port)])
        XCTAssertEqual(try syn(sport: 45001).rule, 5, "the table answers for the key without a block")

        try table.apply(endpoint: Net.epID, [(key(Net.peerIdentity, port: port), nil)])
        XCTAssertEqual(try blocks(), [:])
        XCTAssertNotEqual(try XCTUnwrap(blockMap.lookup(slot)).meta & UInt32(NA_POLICY_TABLE_STALE), 0)
        // Published again (a rule's regeneration): the stale slot is claimed after the grace period it waits out.
        try installHash([(key(Net.peerIdentity), na_policy_value(rule_id: 8, flags: 0))])
        try table.apply(endpoint: Net.epID, [(key(Net.peerIdentity), na_policy_value(rule_id: 8, flags: 0))])
        XCTAssertEqual(try blocks(), [tag(Net.peerIdentity): "rule 8: [\(Net.peerIdentity)]"])
        XCTAssertEqual(try syn(sport: 45002).rule, 8)
    }

    /// A stale slot waits out a grace period only when it was withdrawn after the last one began: once every slot
    /// withdrawn at once was freed by one wait, a change that claims another stale slot after a block's withdrawal
    /// waits for none, and only a claim of the slot withdrawn since waits.
    func testOnlyASlotWithdrawnSinceTheLastGracePeriodWaitsForOne() throws {
        let graces = GraceCounter()
        let policyBlocks = try graces.blocks(blockMap.map, waitsSoon: false)
        let rule = na_policy_value(rule_id: 5, flags: 0)
        let (first, second) = (key(300), key(300, port: 81))
        XCTAssertNotEqual(
            PolicyBlocks.place(endpoint: Net.epID, first).slot, PolicyBlocks.place(endpoint: Net.epID, second).slot)
        try policyBlocks.withdrawAll()
        try policyBlocks.publish(endpoint: Net.epID, [(first, rule)])
        XCTAssertEqual(graces.count, 1, "every slot withdrawn at once: the first claim waits")
        try policyBlocks.withdraw(endpoint: Net.epID, [(first, nil)])
        XCTAssertEqual(try blocks(), [:])

        try policyBlocks.publish(endpoint: Net.epID, [(second, rule)])
        XCTAssertEqual(graces.count, 1, "a slot withdrawn before the last grace period: no wait")
        XCTAssertEqual(try blocks(), [tag(300, port: 81): "rule 5: [300]"])
        try policyBlocks.publish(endpoint: Net.epID, [(first, rule)])
        XCTAssertEqual(graces.count, 2, "the slot withdrawn since: one wait")
        XCTAssertEqual(try blocks(), [tag(300): "rule 5: [300]", tag(300, port: 81): "rule 5: [300]"])
    }

    /// A withdrawal starts a grace period on a thread of its own: a change a moment later claims the slot without
    /// waiting.
    func testAWithdrawalFreesItsSlotInTheBackground() throws {
        let graces = GraceCounter()
        let policyBlocks = try graces.blocks(blockMap.map, waitsSoon: true)
        let first = key(300)
        let slot = PolicyBlocks.place(endpoint: Net.epID, first).slot
        try policyBlocks.publish(endpoint: Net.epID, [(first, na_policy_value(rule_id: 5, flags: 0))])
        XCTAssertFalse(try policyBlocks.isFree(slot: slot), "valid")
        try policyBlocks.withdraw(endpoint: Net.epID, [(first, nil)])
        let deadline = Date() + 10
        while try !policyBlocks.isFree(slot: slot), Date() < deadline { usleep(10_000) }
        XCTAssertTrue(try policyBlocks.isFree(slot: slot), "freed by the grace period the withdrawal started")

        let waited = graces.count
        try policyBlocks.publish(endpoint: Net.epID, [(first, na_policy_value(rule_id: 6, flags: 0))])
        XCTAssertEqual(graces.count, waited, "claimed without waiting")
        XCTAssertEqual(try blocks(), [tag(300): "rule 6: [300]"])
    }

    /// A restore's start withdraws every block (none answers while entries move); its rebuild writes exactly the
    /// blocks of the entries it is given.
    func testASuspendWithdrawsEveryBlockAndARebuildWritesThemFromTheEntries() throws {
        let rule = na_policy_value(rule_id: 5, flags: 0)
        let entries = (UInt32(300)..<UInt32(310)).map { (key: key($0), value: rule) }
        try installHash(entries)
        try table.apply(endpoint: Net.epID, entries.map { ($0.key, $0.value) })
        XCTAssertEqual(try blocks().count, 1)
        try table.suspend()
        XCTAssertEqual(try blocks(), [:])
        XCTAssertEqual(try syn(sport: 46001).rule, 5, "the table and the hash answer")

        try table.rebuild([Net.epID: Array(entries.prefix(3))])
        XCTAssertEqual(try blocks(), [tag(300): "rule 5: [300, 301, 302]"])
        XCTAssertEqual(try syn(sport: 46002).rule, 5)
    }
}

/// Blocks whose synchronous grace periods are counted (and not waited: the fixtures run no packet meanwhile).
private final class GraceCounter: Sendable {
    private let waits = Mutex(0)

    var count: Int { waits.withLock { $0 } }

    func blocks(_ map: BPFMap, waitsSoon: Bool) throws -> PolicyBlocks {
        try PolicyBlocks(
            map,
            gracePeriod: { [self] in
                waits.withLock { $0 += 1 }
                return true
            }, waitsSoon: waitsSoon)
    }
}
