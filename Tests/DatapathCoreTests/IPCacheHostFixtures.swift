import CNodeABI
import DatapathCore
import XCTest

/// The ipcache's tables (`na_ipcache_v4`, `na_ipcache_v6`) in front of its host hash (`na_ipcache_host`), in front
/// of the trie:
/// each answers for the addresses it holds, the next one for the rest, and pins of an agent that wrote only the
/// trie still resolve.
let ipcacheHostFixtures: [Fixture] = [
    Fixture(
        "a host entry only in the trie (pins of an agent without the hash) still resolves",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80)]),
        [
            Step(
                .fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .pass,
                before: Step.Change { h in
                    for key in try h.ipcacheHosts.map.keys() { try h.ipcacheHosts.map.delete(key: key) }
                    try h.clearIPCacheTable()
                }),
            Step(.fromEndpoint, .tcp(Net.ep6, Net.peer6, dport: 80), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 81), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "the hash answers before the trie",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80)]),
        [
            // Written into the hash alone, the peer's address takes the subnet's identity, which no entry allows.
            Step(
                .fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .drop(NA_DROP_POLICY),
                before: Step.Change { h in
                    let key = na_ipcache_key(try XCTUnwrap(IPAddress(Net.peer4)))
                    try h.ipcacheHosts.update(key, na_ipcache_value(identity: Net.subnetIdentity, flags: 0))
                    try h.clearIPCacheTable()
                }
            ) { _, events in XCTAssertEqual(events.first?.dst_identity, Net.subnetIdentity) },
            Step(.fromEndpoint, .tcp(Net.ep6, Net.peer6, dport: 80), .pass),
        ]),
    Fixture(
        "a removed host falls back to its covering prefix, then to world",
        setup: Setup(policy: [.egress(Net.subnetIdentity, Proto.tcp, 80)]),
        [
            Step(
                .fromEndpoint, .tcp(Net.ep4, "10.0.3.7", dport: 80), .drop(NA_DROP_POLICY),
                before: Step.Change { h in
                    try h.ipcacheWriter.set(try XCTUnwrap(IPAddress("10.0.3.7")), identity: Net.peerIdentity)
                }),
            Step(
                .fromEndpoint, .tcp(Net.ep4, "10.0.3.7", dport: 80), .pass,
                before: Step.Change { h in try h.ipcacheWriter.remove(try XCTUnwrap(IPAddress("10.0.3.7"))) }),
            Step(
                .fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .drop(NA_DROP_POLICY),
                before: Step.Change { h in try h.ipcacheWriter.remove(try XCTUnwrap(IPAddress(Net.peer4))) }
            ) { h, events in
                XCTAssertEqual(events.first?.dst_identity, NA_ID_WORLD.rawValue)
                XCTAssertNil(try h.ipcacheHosts.lookup(na_ipcache_key(try XCTUnwrap(IPAddress(Net.peer4)))))
                XCTAssertNil(try h.ipcache.lookup(na_ipcache_key(try XCTUnwrap(IPAddress(Net.peer4)))))
            },
        ]),
    tableFixture("IPv4", endpoint: Net.ep4, peer: Net.peer4),
    tableFixture("IPv6", endpoint: Net.ep6, peer: Net.peer6),
]

/// A family's table answers before the hash, and only while an entry is valid.
private func tableFixture(_ family: String, endpoint: String, peer: String) -> Fixture {
    Fixture(
        "the \(family) table answers before the hash, and only while an entry is valid",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80)]),
        [
            // The hash says the subnet's identity, which no entry allows; the table's valid entry (written by Setup)
            // still says the peer's.
            Step(
                .fromEndpoint, .tcp(endpoint, peer, dport: 80), .pass,
                before: Step.Change { h in
                    let key = na_ipcache_key(try XCTUnwrap(IPAddress(peer)))
                    try h.ipcacheHosts.update(key, na_ipcache_value(identity: Net.subnetIdentity, flags: 0))
                }),
            // The same entry without its valid bit is not read: the hash answers.
            Step(
                .fromEndpoint, .tcp(endpoint, peer, sport: 40001, dport: 80), .drop(NA_DROP_POLICY),
                before: Step.Change { h in try h.invalidateIPCacheTableEntry(try XCTUnwrap(IPAddress(peer))) }
            ) { _, events in XCTAssertEqual(events.first?.dst_identity, Net.subnetIdentity) },
        ])
}

/// `IPCache` keeps the hash equal to the trie's host entries.
final class IPCacheHostTests: XCTestCase {
    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
    }

    private func hashContents(_ h: DatapathHarness) throws -> [String: UInt32] {
        var result: [String: UInt32] = [:]
        for (key, value) in try h.ipcacheHosts.entries() { result[key.prefix?.description ?? "?"] = value.identity }
        return result
    }

    func testSetWritesHostsIntoBothMapsAndPrefixesIntoTheTrieOnly() throws {
        let h = try DatapathHarness.shared()
        try h.reset()
        try Setup().apply(to: h)
        XCTAssertEqual(try h.ipcache.entries().count, 3)
        XCTAssertEqual(
            try hashContents(h), ["\(Net.peer4)/32": Net.peerIdentity, "\(Net.peer6)/128": Net.peerIdentity])
    }

    func testSyncRefillsTheHashFromTheTrieAndDropsWhatTheTrieLacks() throws {
        let h = try DatapathHarness.shared()
        try h.reset()
        try Setup().apply(to: h)
        // As an older agent left them: the hash empty but for an entry the trie no longer has, and one stale.
        for key in try h.ipcacheHosts.map.keys() { try h.ipcacheHosts.map.delete(key: key) }
        try h.ipcacheHosts.update(
            na_ipcache_key(try XCTUnwrap(IPAddress("10.9.9.9"))), na_ipcache_value(identity: 999, flags: 0))
        try h.ipcacheHosts.update(
            na_ipcache_key(try XCTUnwrap(IPAddress(Net.peer6))), na_ipcache_value(identity: 999, flags: 0))

        XCTAssertEqual(try h.ipcacheWriter.syncHostEntries(), 3)
        XCTAssertEqual(
            try hashContents(h), ["\(Net.peer4)/32": Net.peerIdentity, "\(Net.peer6)/128": Net.peerIdentity])
        XCTAssertEqual(try h.ipcacheWriter.syncHostEntries(), 0)
    }
}
