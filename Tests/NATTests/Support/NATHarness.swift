import DatapathCore
import Glibc
import XCTest

@testable import NAT

/// The datapath object loaded without pins and with small maps, NAT configured in its maps, and helpers to run
/// to_netdev / from_netdev on a packet with BPF_PROG_TEST_RUN. Every harness has maps of its own.
final class NATHarness {
    static let node = "172.31.0.1"
    static let pod = "10.244.1.5"
    static let world = "198.51.100.7"

    let datapath: Datapath
    let toNetdev: BPFProgram
    let fromNetdev: BPFProgram

    static let smallMaps: [String: UInt32] = [
        "na_ct": 4096, "na_nat": 8192, "na_ipcache": 1024, "na_endpoints": 64, "na_policy": 64, "na_frags": 256,
    ]

    /// Skips unless root (loading BPF programs needs CAP_BPF and CAP_NET_ADMIN).
    init(ports: ClosedRange<UInt16> = 32768...65535, cluster: [String] = ["10.244.0.0/16"], enabled: Bool = true)
        throws
    {
        try XCTSkipUnless(getuid() == 0, "loading BPF programs needs root")
        datapath = try Datapath(unpinned: "endpoint", maxEntries: Self.smallMaps)
        toNetdev = try datapath.program("to_netdev")
        fromNetdev = try datapath.program("from_netdev")
        let setup = NATDatapathConfig(datapath: datapath)
        try setup.setClusterPrefixes(cluster.map { IPPrefix($0)! })
        if enabled { try setup.enable(address: IPAddress(Self.node)!, ports: ports, ifindex: 0) }
    }

    /// Runs to_netdev (tc egress of the external interface) on `packet`.
    func egress(_ packet: IPv4Packet) throws -> (verdict: UInt32, frame: [UInt8]) {
        let result = try toNetdev.testRun(packet: packet.bytes)
        return (result.retval, result.packetOut)
    }

    /// Runs from_netdev (tc ingress of the external interface) on `packet`.
    func ingress(_ packet: IPv4Packet) throws -> (verdict: UInt32, frame: [UInt8]) {
        let result = try fromNetdev.testRun(packet: packet.bytes)
        return (result.retval, result.packetOut)
    }

    var nat: TypedMap<na_ct_key, na_nat_entry> { get throws { try datapath.typedMap("na_nat") } }
    var conntrack: TypedMap<na_ct_key, na_ct_value> { get throws { try datapath.typedMap("na_ct") } }

    func natEntries() throws -> [(key: na_ct_key, value: na_nat_entry)] { try nat.entries() }

    /// The key a packet's forward half (and its conntrack entry as the endpoint created it) has.
    static func forwardKey(_ packet: IPv4Packet) -> na_ct_key {
        var key = na_ct_key()
        setTupleBytes(&key.saddr, IPAddress(packet.source)!.keyBytes)
        setTupleBytes(&key.daddr, IPAddress(packet.destination)!.keyBytes)
        switch packet.transport {
        case .tcp(let sport, let dport, _), .udp(let sport, let dport, _):
            key.sport = sport.bigEndian
            key.dport = dport.bigEndian
        case .icmpEcho(let id, _):
            key.sport = id.bigEndian
        }
        key.proto = packet.proto
        key.family = UInt8(NA_FAMILY_IPV4)
        key.direction = UInt8(NA_DIR_EGRESS.rawValue)
        return key
    }

    /// A live conntrack entry for `key`, as an endpoint program would have created it.
    func track(_ key: na_ct_key, lifetime: UInt32 = 600) throws {
        var value = na_ct_value()
        value.lifetime = MonotonicClock.seconds() + lifetime
        value.created = MonotonicClock.seconds()
        value.ep_id = 1
        try conntrack.update(key, value)
    }

    /// Packets counted in na_metrics for (reason, direction), all CPUs.
    func dropped(_ reason: na_reason, direction: na_direction = NA_DIR_EGRESS) throws -> UInt64 {
        let map: TypedMap<UInt32, na_metrics_value> = try datapath.typedMap("na_metrics")
        let slot = na_metrics_slot(UInt16(reason.rawValue), UInt8(direction.rawValue))
        return try map.lookupPerCPU(slot)?.reduce(0) { $0 + $1.packets } ?? 0
    }

    /// Flow events written to the ring buffer so far, all CPUs.
    func eventsEmitted() throws -> UInt64 {
        let map: TypedMap<UInt32, na_event_stats> = try datapath.typedMap("na_event_stats")
        return try map.lookupPerCPU(0)?.reduce(0) { $0 + $1.emitted } ?? 0
    }
}

let TC_ACT_OK: UInt32 = 0
let TC_ACT_SHOT: UInt32 = 2
