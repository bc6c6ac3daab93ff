import Policy
import XCTest

final class PolicyMapEntriesTests: XCTestCase {
    private let tcp: UInt8 = 6

    private func entry(_ identity: UInt32, _ port: UInt16 = 0, deny: Bool = false, rule: UInt32 = 1) -> PolicyEntry {
        PolicyEntry(
            identity: identity, direction: .ingress, proto: port == 0 ? 0 : tcp, port: port,
            portPrefixBits: port == 0 ? 0 : 16, deny: deny, ruleIDs: [rule])
    }

    func testOneEntryPerKeyInKeyOrderTheLaterWinning() {
        let entries = PolicyMapEntries([entry(9, 80), entry(3), entry(9, 80, deny: true), entry(3, 443), entry(1)])
        XCTAssertEqual(entries.map(\.key), [entry(1), entry(3), entry(3, 443), entry(9, 80)].map(\.key))
        XCTAssertEqual(entries[entry(9, 80).key], entry(9, 80, deny: true))
        XCTAssertEqual(entries[entry(3, 443).key], entry(3, 443))
        XCTAssertNil(entries[entry(3, 80).key])
        XCTAssertNil(entries[entry(0).key])
        XCTAssertNil(PolicyMapEntries()[entry(1).key])
    }

    func testApplyWritesThenRemoves() {
        var entries: PolicyMapEntries = [entry(1), entry(2, 80), entry(5)]
        entries.apply(upsert: [entry(4), entry(2, 80, deny: true), entry(7)], remove: [entry(5).key, entry(7).key])
        // A key written and removed in the same change ends removed, as when the writes go first.
        XCTAssertEqual(Array(entries), [entry(1), entry(2, 80, deny: true), entry(4)])
        entries.apply(upsert: [], remove: [entry(1).key, entry(9).key])
        XCTAssertEqual(Array(entries), [entry(2, 80, deny: true), entry(4)])
    }

    /// The same random changes applied to a dictionary and to the sorted entries, checked against each other
    /// after every step, with the changes `diff` computes between the two states.
    func testAgreesWithADictionaryOverRandomChanges() {
        var generator = SystemRandomNumberGenerator()
        var model: [PolicyEntry.Key: PolicyEntry] = [:]
        var entries = PolicyMapEntries()
        func random() -> PolicyEntry {
            entry(
                UInt32.random(in: 0..<40, using: &generator), [0, 80, 443].randomElement(using: &generator)!,
                deny: Bool.random(using: &generator), rule: UInt32.random(in: 1...3, using: &generator))
        }
        for step in 0..<300 {
            let upsert = (0..<Int.random(in: 0..<12, using: &generator)).map { _ in random() }
            let remove = (0..<Int.random(in: 0..<12, using: &generator)).map { _ in random().key }
            let before = entries
            for written in upsert { model[written.key] = written }
            for key in remove { model[key] = nil }
            entries.apply(upsert: upsert, remove: remove)
            XCTAssertEqual(Array(entries), model.values.sorted { $0.key < $1.key }, "step \(step)")
            for key in model.keys { XCTAssertEqual(entries[key], model[key]) }

            let (changes, gone) = PolicyMapEntries.diff(from: before, to: entries)
            XCTAssertEqual(changes, entries.filter { before[$0.key] != $0 }, "step \(step)")
            XCTAssertEqual(gone, before.map(\.key).filter { entries[$0] == nil }, "step \(step)")
            var replayed = before
            replayed.apply(upsert: changes, remove: gone)
            XCTAssertEqual(replayed, entries, "step \(step)")
        }
    }

    /// The entries of some identities, both directions, equal a filter over the whole map.
    func testEntriesOfIdentitiesEqualAFilterOverTheMap() {
        var generator = SystemRandomNumberGenerator()
        let all = (0..<400).map { _ in
            PolicyEntry(
                identity: UInt32.random(in: 0..<30, using: &generator),
                direction: Bool.random(using: &generator) ? .ingress : .egress,
                proto: [0, 6, 17].randomElement(using: &generator)!, port: 0)
        }
        let map = PolicyMapEntries(all + [entry(70_000, 80), entry(UInt32.max)])
        for asked: Set<UInt32> in [[], [0], [29], [3, 7, 11], [31], [UInt32.max, 70_000], Set(0..<30)] {
            let found = map.entries(of: asked)
            XCTAssertEqual(Array(found), map.filter { asked.contains($0.identity) }, "\(asked.sorted())")
            XCTAssertEqual(found, PolicyMapEntries(Array(found)), "in key order")
        }
        XCTAssertTrue(map.entries(of: [0]).contains { $0.direction == .egress })
        XCTAssertTrue(map.entries(of: [0]).contains { $0.direction == .ingress })
    }

    func testAnEntryOfOneRuleKeepsItAndOfSeveralTheLowestInTheMap() {
        var several = entry(4)
        several.ruleIDs = [2, 7]
        XCTAssertEqual(several.ruleIDs, [2, 7])
        XCTAssertEqual(several.ruleID, 2)
        XCTAssertEqual(several.mapped, entry(4, rule: 2))
        XCTAssertNotEqual(several, entry(4, rule: 2))
        several.ruleIDs = []
        XCTAssertEqual(several.ruleID, 0)
        XCTAssertEqual(several.mapped.ruleIDs, [])
        XCTAssertEqual(entry(4, rule: 9).ruleIDs, [9])
    }
}
