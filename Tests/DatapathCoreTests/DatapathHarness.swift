import AgentAPI
import CLibbpf
import CNodeABI
import DatapathCore
import Glibc
import XCTest

/// The endpoint object loaded once (without pinning) for all fixtures, with typed access to its maps and
/// the setup and reset steps fixtures use. Tests run one at a time, so maps are reset before each fixture.
final class DatapathHarness: Sendable {
    /// BPF_PROG_TEST_RUN hands tc programs an skb on the loopback device of the caller's network namespace
    /// unless the context names another existing device (net/bpf/test_run.c: `dev = net->loopback_dev`,
    /// replaced only for ctx->ifindex > 1). Loopback is ifindex 1 in every namespace, so skb->ifindex is 1
    /// and fixture endpoints are registered under it.
    static let testRunIfindex: UInt32 = 1

    /// Small maps keep each load quick and light; sizes do not change the programs' logic.
    static let testSizes: [String: UInt32] = [
        "na_ct": 4096, "na_ipcache": 1024, "na_ipcache_host": 1024, "na_endpoints": 64, "na_policy": 64,
        "na_policy_exact": 64, "na_ep_slots": 64,
        "na_frags": 256,
    ]

    /// Where `installPolicy` puts full-length keys by default: the hash (as the agent), or the trie (as an agent
    /// without the hash did); tests run one at a time.
    nonisolated(unsafe) static var exactPoliciesInHash = true

    nonisolated(unsafe) private static var loaded: Result<DatapathHarness, any Error>?

    /// The shared harness, loaded on first use.
    static func shared() throws -> DatapathHarness {
        if loaded == nil { loaded = Result { try DatapathHarness() } }
        return try loaded!.get()
    }

    let object: BPFObject
    let endpoints: TypedMap<UInt32, na_endpoint_info>
    let slots: TypedMap<UInt32, na_endpoint_info>
    let ipcache: TypedMap<na_ipcache_key, na_ipcache_value>
    let ipcacheHosts: TypedMap<na_ipcache_key, na_ipcache_value>
    let ipcacheV4: TypedMap<UInt32, na_ipcache_v4_bucket>
    let ipcacheV6: TypedMap<UInt32, na_ipcache_v6_bucket>
    let policy: TypedMap<UInt32, UInt32>
    let policyExact: TypedMap<UInt32, UInt32>
    let conntrack: TypedMap<na_ct_key, na_ct_value>
    let metrics: TypedMap<UInt32, na_metrics_value>
    let config: TypedMap<UInt32, na_config>
    let eventStats: TypedMap<UInt32, na_event_stats>
    let frags: TypedMap<na_frag_key, na_frag_value>
    let dropAggregation: TypedMap<na_drop_agg_key, UInt64>
    let events: BPFRingBuffer

    init() throws {
        let object = try BPFObject.load(embedded: "endpoint", pinDirectory: nil, maxEntries: Self.testSizes)
        func map(_ name: String) throws -> BPFMap {
            guard let map = object.map(named: name) else { throw HarnessError("the object has no map \(name)") }
            return map
        }
        self.object = object
        endpoints = try TypedMap(map("na_endpoints"))
        slots = try TypedMap(map("na_ep_slots"))
        ipcache = try TypedMap(map("na_ipcache"))
        ipcacheHosts = try TypedMap(map("na_ipcache_host"))
        ipcacheV4 = try TypedMap(map("na_ipcache_v4"))
        ipcacheV6 = try TypedMap(map("na_ipcache_v6"))
        policy = try TypedMap(map("na_policy"))
        policyExact = try TypedMap(map("na_policy_exact"))
        conntrack = try TypedMap(map("na_ct"))
        metrics = try TypedMap(map("na_metrics"))
        config = try TypedMap(map("na_config"))
        eventStats = try TypedMap(map("na_event_stats"))
        frags = try TypedMap(map("na_frags"))
        dropAggregation = try TypedMap(map("na_drop_agg"))
        events = try BPFRingBuffer(map("na_events"))
    }

    /// Empties every map a fixture sets up, and the ring buffer; metrics and event counters are compared
    /// as deltas instead.
    func reset() throws {
        try clearIPCacheTable()
        for map in [
            endpoints.map, ipcache.map, ipcacheHosts.map, policy.map, policyExact.map, conntrack.map, frags.map,
            dropAggregation.map,
        ] {
            for key in try map.keys() { try map.delete(key: key) }
        }
        for key in try slots.map.keys() { try slots.map.update(key: key, value: bytesOf(na_endpoint_info())) }
        try config.update(0, na_config())
        // No port or peer filter in front of the policy table and hashes until a fixture writes one
        // (PolicyTableTests).
        if let ports = object.map(named: PolicyTable.portsName) {
            try TypedMap<UInt32, UInt64>(ports).update(UInt32(NA_POLICY_PORTS_COMPLETE), 0)
        }
        if let peers = object.map(named: PolicyTable.peersName) {
            try TypedMap<UInt32, UInt64>(peers).update(UInt32(NA_POLICY_PEERS_COMPLETE), 0)
        }
        _ = try events.drain()
    }

    func program(_ name: String) throws -> BPFProgram {
        guard let program = object.program(named: name) else { throw HarnessError("the object has no program \(name)") }
        return program
    }

    /// Runs `program` once on `packet` as the kernel would for traffic of the endpoint at testRunIfindex.
    func run(_ program: String, _ packet: [UInt8]) throws -> UInt32 {
        try self.program(program).testRun(packet: packet).retval
    }

    /// Creates the endpoint's inner policy maps as the agent does (full-length keys of one peer identity in the
    /// hash, the rest in the trie; `exactInHash: false` puts everything in the trie, as an agent without the hash
    /// did), fills them and installs them in na_policy and na_policy_exact.
    func installPolicy(endpoint id: UInt32, _ entries: [PolicyEntry], exactInHash: Bool? = nil) throws {
        let exactInHash = exactInHash ?? Self.exactPoliciesInHash
        let inner = try BPFMap.create(
            type: .lpmTrie, name: "na_pol_\(id)", keySize: MemoryLayout<na_policy_key>.size,
            valueSize: MemoryLayout<na_policy_value>.size, maxEntries: 16384, flags: UInt32(BPF_F_NO_PREALLOC))
        let hash = try BPFMap.create(
            type: .hash, name: "na_polh_\(id)", keySize: MemoryLayout<na_policy_key>.size,
            valueSize: MemoryLayout<na_policy_value>.size, maxEntries: 16384, flags: UInt32(BPF_F_NO_PREALLOC))
        let trie = try TypedMap<na_policy_key, na_policy_value>(inner)
        let exact = try TypedMap<na_policy_key, na_policy_value>(hash)
        for entry in entries {
            let full = exactInHash && entry.identity != 0 && entry.key.prefixlen == UInt32(NA_POLICY_PREFIX_PORT)
            try (full ? exact : trie).update(entry.key, entry.value)
        }
        try policy.update(id, UInt32(bitPattern: inner.fd))
        if exactInHash {
            try policyExact.update(id, UInt32(bitPattern: hash.fd))
        } else {
            try policyExact.delete(id)
        }
    }

    /// An endpoint row as the programs find it once the agent has filled its slot (`EndpointSlots`): in
    /// `na_endpoints` and, valid, in `na_ep_slots`. Fixtures run one at a time, so no packet reads the slot while
    /// it changes.
    func writeEndpoint(_ ifindex: UInt32, _ info: na_endpoint_info) throws {
        try endpoints.update(ifindex, info)
        guard ifindex < UInt32(slots.map.info.maxEntries) else { return }
        var slot = info
        slot.flags |= UInt32(NA_EP_SLOT_VALID)
        try slots.update(ifindex, slot)
    }

    /// What the agent does when the endpoint's policy changes: a new policy map, then the endpoint's row with the
    /// next policy generation (and the enforcement flags given, when given).
    func changePolicy(
        endpoint ifindex: UInt32 = testRunIfindex, _ entries: [PolicyEntry], enforceIngress: Bool? = nil,
        enforceEgress: Bool? = nil
    ) throws {
        guard var info = try endpoints.lookup(ifindex) else { throw HarnessError("no endpoint at ifindex \(ifindex)") }
        try installPolicy(endpoint: info.ep_id, entries)
        if let enforceIngress { info.flags = flag(info.flags, UInt32(NA_EP_ENFORCE_INGRESS), enforceIngress) }
        if let enforceEgress { info.flags = flag(info.flags, UInt32(NA_EP_ENFORCE_EGRESS), enforceEgress) }
        info.policy_revision += 1
        try writeEndpoint(ifindex, info)
    }

    private func flag(_ flags: UInt32, _ bit: UInt32, _ on: Bool) -> UInt32 { on ? flags | bit : flags & ~bit }

    /// The ipcache as the agent writes it: trie and host hash.
    var ipcacheWriter: IPCache {
        get throws { try IPCache(trie: ipcache.map, hosts: ipcacheHosts.map, v4: ipcacheV4.map, v6: ipcacheV6.map) }
    }

    /// Empties the buckets of `na_ipcache_v4` and `na_ipcache_v6` that hold (or may hold) `address`, or every host
    /// address of the ipcache maps, leaving the hash and trie to answer for them (as for addresses a full bucket has
    /// no room for). Only `IPCache` fills the tables, with addresses it writes to the maps, so no other bucket has a
    /// valid entry; the tables' 65,536 buckets are not walked, which under an emulated kernel would cost seconds per
    /// fixture.
    func clearIPCacheTable(only address: IPAddress? = nil) throws {
        var addresses: [IPAddress] = address.map { [$0] } ?? []
        if address == nil {
            for key in try ipcache.map.keys() + ipcacheHosts.map.keys() {
                let parsed: na_ipcache_key = valueFrom(key, at: 0)
                guard let prefix = parsed.prefix, prefix.length == prefix.address.bitLength else { continue }
                addresses.append(prefix.address)
            }
        }
        var v4 = Set<UInt32>()
        var v6 = Set<UInt32>()
        for address in addresses {
            if let word = address.ipcacheV4Word { v4.insert(na_ipcache_v4_bucket_of(word)) }
            if let w = address.ipcacheV6Words { v6.insert(na_ipcache_v6_bucket_of(w.0, w.1, w.2, w.3)) }
        }
        for bucket in v4 { try ipcacheV4.update(bucket, na_ipcache_v4_bucket()) }
        for bucket in v6 { try ipcacheV6.update(bucket, na_ipcache_v6_bucket()) }
    }

    /// Clears the valid bit of `address`'s entry in its family's table (`na_ipcache_v4`, `na_ipcache_v6`) and
    /// leaves the rest of the entry, as a withdrawal under way does. Both tables' entries are an identity word, then
    /// the address's bytes in packet order.
    func invalidateIPCacheTableEntry(_ address: IPAddress) throws {
        let (map, index, stride, ways): (BPFMap, UInt32, Int, Int)
        if let word = address.ipcacheV4Word {
            (map, index) = (ipcacheV4.map, na_ipcache_v4_bucket_of(word))
            (stride, ways) = (MemoryLayout<na_ipcache_v4_entry>.stride, Int(NA_IPCACHE_V4_WAYS))
        } else {
            let w = try XCTUnwrap(address.ipcacheV6Words)
            (map, index) = (ipcacheV6.map, na_ipcache_v6_bucket_of(w.0, w.1, w.2, w.3))
            (stride, ways) = (MemoryLayout<na_ipcache_v6_entry>.stride, Int(NA_IPCACHE_V6_WAYS))
        }
        var value = try XCTUnwrap(map.lookup(key: bytesOf(index)))
        for slot in 0..<ways
        where Array(value[slot * stride + 4..<slot * stride + 4 + address.bytes.count]) == address.bytes {
            value[slot * stride + 3] &= ~UInt8(NA_IPCACHE_V4_VALID >> 24)  // the top byte of a little-endian word
        }
        try map.update(key: bytesOf(index), value: value)
    }

    /// Adds an ipcache entry for `cidr` ("10.0.2.0/24", "fd00::7/128") as the agent does.
    func addIPCache(_ cidr: String, identity: UInt32) throws {
        try ipcacheWriter.set(try XCTUnwrap(IPPrefix(cidr), cidr), identity: identity)
    }

    /// Packets and bytes counted under (reason, direction), summed over CPUs.
    func metric(reason: UInt32, direction: UInt32) throws -> (packets: UInt64, bytes: UInt64) {
        let values = try metrics.lookupPerCPU(na_metrics_slot(UInt16(reason), UInt8(direction))) ?? []
        return (values.reduce(0) { $0 + $1.packets }, values.reduce(0) { $0 + $1.bytes })
    }

    /// Flow events emitted and lost, summed over CPUs.
    func eventCounters() throws -> (emitted: UInt64, lost: UInt64) {
        let values = try eventStats.lookupPerCPU(0) ?? []
        return (values.reduce(0) { $0 + $1.emitted }, values.reduce(0) { $0 + $1.lost })
    }

    /// The flow events written since the last drain.
    func drainEvents() throws -> [na_flow_event] {
        try events.drain().map { record in
            guard record.count >= MemoryLayout<na_flow_event>.size else { return na_flow_event() }
            return record.withUnsafeBytes { $0.loadUnaligned(as: na_flow_event.self) }
        }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// CLOCK_MONOTONIC_COARSE in seconds, the clock of conntrack lifetimes (bpf_ktime_get_coarse_ns).
func monotonicSeconds() -> UInt32 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now)
    return UInt32(now.tv_sec)
}
