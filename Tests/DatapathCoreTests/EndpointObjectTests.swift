import CLibbpf
import CNodeABI
import DatapathCore
import XCTest

/// The compiled endpoint object as the contract names it: programs, maps, their types and sizes.
final class EndpointObjectTests: XCTestCase {
    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
    }

    func testObjectDeclaresTheContractMapsAndPrograms() throws {
        let object = try BPFObject.load(embedded: "endpoint", pinDirectory: nil)
        XCTAssertEqual(
            Set(object.programs.map(\.name)),
            ["from_endpoint", "to_endpoint", "deliver_local", "from_netdev", "to_netdev"])
        let noPrealloc = UInt32(BPF_F_NO_PREALLOC)
        let expected: [String: (BPFMapType, Int, Int, Int, UInt32)] = [
            "na_endpoints": (.hash, 4, MemoryLayout<na_endpoint_info>.size, 65535, 0),
            "na_ep_slots": (.array, 4, MemoryLayout<na_endpoint_info>.size, Int(NA_EP_SLOTS), 0),
            "na_ipcache": (
                .lpmTrie, MemoryLayout<na_ipcache_key>.size, MemoryLayout<na_ipcache_value>.size, 512_000, noPrealloc
            ),
            "na_ipcache_host": (
                .hash, MemoryLayout<na_ipcache_key>.size, MemoryLayout<na_ipcache_value>.size, 512_000, noPrealloc
            ),
            "na_ipcache_v4": (.array, 4, MemoryLayout<na_ipcache_v4_bucket>.size, Int(NA_IPCACHE_V4_BUCKETS), 0),
            "na_ipcache_v6": (.array, 4, MemoryLayout<na_ipcache_v6_bucket>.size, Int(NA_IPCACHE_V6_BUCKETS), 0),
            "na_ptable": (.array, 4, MemoryLayout<na_policy_table_bucket>.size, Int(NA_POLICY_TABLE_BUCKETS), 0),
            "na_ptable_ep": (.array, 4, 4, 65536, 0),
            "na_ptable_ovf": (.array, 4, 8, Int(NA_POLICY_TABLE_OVF_WORDS), 0),
            "na_ptable_ports": (.array, 4, 8, Int(NA_POLICY_PORTS_COMPLETE) + 1, 0),
            "na_ptable_peers": (.array, 4, 8, Int(NA_POLICY_PEERS_COMPLETE) + 1, 0),
            "na_ptable_bits": (.array, 4, MemoryLayout<na_policy_block>.size, Int(NA_POLICY_BLOCKS), 0),
            "na_policy": (.hashOfMaps, 4, 4, 65535, 0),
            "na_policy_exact": (.hashOfMaps, 4, 4, 65535, 0),
            "na_ct": (.lruHash, MemoryLayout<na_ct_key>.size, MemoryLayout<na_ct_value>.size, 524_288, 0),
            "na_metrics": (.perCPUArray, 4, MemoryLayout<na_metrics_value>.size, Int(NA_METRICS_SLOTS), 0),
            "na_config": (.array, 4, MemoryLayout<na_config>.size, 1, 0),
            "na_events": (.ringBuffer, 0, 0, 1 << 20, 0),
            "na_event_stats": (.perCPUArray, 4, MemoryLayout<na_event_stats>.size, 1, 0),
            "na_frags": (.lruHash, MemoryLayout<na_frag_key>.size, MemoryLayout<na_frag_value>.size, 8192, 0),
            "na_ct_created": (.perCPUArray, 4, 8, 1, 0),
            "na_drop_agg": (.lruHash, MemoryLayout<na_drop_agg_key>.size, 8, 16384, 0),
            "na_nat": (.lruHash, MemoryLayout<na_ct_key>.size, MemoryLayout<na_nat_entry>.size, 262_144, 0),
            "na_nat_config": (.array, 4, MemoryLayout<na_nat_config>.size, 1, 0),
            "na_nat_cluster": (.lpmTrie, MemoryLayout<na_ipcache_key>.size, 4, 256, noPrealloc),
            // The load balancer's maps (lb_maps.h, shared with the sock object through their pins) and the
            // translated flows.
            "na_lb_services": (
                .hash, MemoryLayout<na_lb_service_key>.size, MemoryLayout<na_lb_service_value>.size, 65536, 0
            ),
            "na_lb_backends": (.hash, 4, MemoryLayout<na_lb_backend>.size, 65536, 0),
            "na_lb_revnat": (
                .lruHash, MemoryLayout<na_lb_revnat_key>.size, MemoryLayout<na_lb_revnat_value>.size, 262_144, 0
            ),
            "na_lb_affinity": (
                .lruHash, MemoryLayout<na_lb_affinity_key>.size, MemoryLayout<na_lb_affinity_value>.size, 65536, 0
            ),
            "na_lb_aff_match": (.hash, MemoryLayout<na_lb_aff_match_key>.size, 1, 65536, 0),
            "na_lb_maglev": (.hashOfMaps, 4, 4, 65536, noPrealloc),
            "na_lb_ports": (.array, 4, 8, Int(NA_LB_PORTS_COMPLETE) + 1, 0),
            "na_lb_flows": (.lruHash, MemoryLayout<na_ct_key>.size, MemoryLayout<na_lb_flow>.size, 262_144, 0),
            // lb_reject.h's scratch space for building a refusal: never read outside the datapath.
            "na_lb_rej_buf": (.perCPUArray, 4, 308, 1, 0),
            "na_lb_aff_ip": (
                .lruHash, MemoryLayout<na_lb_aff_ip_key>.size, MemoryLayout<na_lb_affinity_value>.size, 65536, 0
            ),
            // local_delivery.h: the slot from_endpoint tail-calls deliver_local through, its FIB scratch and the
            // routing answers it keeps.
            "na_local_prog": (.progArray, 4, 4, 1, 0),
            "na_local_fib": (.perCPUArray, 4, MemoryLayout<bpf_fib_lookup>.size, 1, 0),
            "na_local_routes": (.perCPUArray, 4, MemoryLayout<na_local_route>.size, Int(NA_LOCAL_ROUTE_SLOTS), 0),
        ]
        XCTAssertEqual(Set(object.maps.map(\.name)), Set(expected.keys))
        for map in object.maps {
            guard let (type, key, value, entries, flags) = expected[map.name] else { continue }
            XCTAssertEqual(map.info.type, type, map.name)
            XCTAssertEqual(map.info.keySize, key, "\(map.name) key size")
            XCTAssertEqual(map.info.valueSize, value, "\(map.name) value size")
            XCTAssertEqual(map.info.maxEntries, entries, "\(map.name) max entries")
            XCTAssertEqual(map.info.flags & noPrealloc, flags, "\(map.name) flags")
        }
    }

    /// The kernel accepts an inner map when its type, key and value sizes and flags match the template
    /// (bpf_map_meta_equal); the number of entries may differ, so the agent can size policy maps freely.
    func testPolicyInnerMapsMustMatchTheTemplate() throws {
        let h = try DatapathHarness.shared()
        func trie(key: Int, entries: Int) throws -> BPFMap {
            try BPFMap.create(
                type: .lpmTrie, name: "na_pol_probe", keySize: key, valueSize: MemoryLayout<na_policy_value>.size,
                maxEntries: entries, flags: UInt32(BPF_F_NO_PREALLOC))
        }
        let keySize = MemoryLayout<na_policy_key>.size
        let template = try trie(key: keySize, entries: 16384)
        let smaller = try trie(key: keySize, entries: 1024)
        let otherKey = try trie(key: keySize + 4, entries: 16384)
        XCTAssertNoThrow(try h.policy.update(999, UInt32(bitPattern: template.fd)))
        XCTAssertNoThrow(try h.policy.update(998, UInt32(bitPattern: smaller.fd)))
        XCTAssertThrowsError(try h.policy.update(997, UInt32(bitPattern: otherKey.fd)))
        try h.policy.delete(999)
        try h.policy.delete(998)
    }

    /// Maglev tables are arrays flagged BPF_F_INNER_MAP, so each service's table has a size of its own; an
    /// array without the flag does not match the template.
    func testMaglevTablesMayHaveAnySize() throws {
        let h = try DatapathHarness.shared()
        let outer = try XCTUnwrap(h.object.map(named: "na_lb_maglev"))
        let tables = try TypedMap<UInt32, UInt32>(outer)
        func table(entries: Int, flags: UInt32) throws -> BPFMap {
            try BPFMap.create(
                type: .array, name: "na_lb_mg_probe", keySize: 4, valueSize: 4, maxEntries: entries, flags: flags)
        }
        let innerMap = UInt32(BPF_F_INNER_MAP)
        let large = try table(entries: 16382, flags: innerMap)
        let small = try table(entries: 252, flags: innerMap)
        let unflagged = try table(entries: 252, flags: 0)
        XCTAssertNoThrow(try tables.update(1, UInt32(bitPattern: large.fd)))
        XCTAssertNoThrow(try tables.update(2, UInt32(bitPattern: small.fd)))
        XCTAssertThrowsError(try tables.update(3, UInt32(bitPattern: unflagged.fd)))
        try tables.delete(1)
        try tables.delete(2)
    }
}
