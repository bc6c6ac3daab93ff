import CNodeABI
import DatapathCore
import XCTest

/// Flow events: one per drop by default, allowed new flows only when configured and sampled.
let eventFixtures: [Fixture] = [
    Fixture(
        "a drop emits one event describing the packet and its verdict",
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80), .drop(NA_DROP_POLICY)) { _, events in
                let e = try XCTUnwrap(events.first)
                XCTAssertEqual(e.verdict, UInt8(NA_VERDICT_DROPPED.rawValue))
                XCTAssertEqual(UInt32(e.reason), NA_DROP_POLICY.rawValue)
                XCTAssertEqual(UInt32(e.direction), NA_DIR_EGRESS.rawValue)
                XCTAssertEqual(UInt32(e.family), UInt32(NA_FAMILY_IPV4))
                XCTAssertEqual(e.proto, Proto.tcp)
                XCTAssertEqual(Array(tupleBytes(e.saddr).prefix(4)), ipv4Address(Net.ep4))
                XCTAssertEqual(Array(tupleBytes(e.daddr).prefix(4)), ipv4Address(Net.peer4))
                XCTAssertEqual(UInt16(bigEndian: e.sport), 40000)
                XCTAssertEqual(UInt16(bigEndian: e.dport), 80)
                XCTAssertEqual(e.ep_id, Net.epID)
                XCTAssertEqual(e.src_identity, Net.epIdentity)
                XCTAssertEqual(e.dst_identity, Net.peerIdentity)
                XCTAssertEqual(e.ifindex, DatapathHarness.testRunIfindex)
                XCTAssertEqual(e.length, UInt32(Packet.tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80).bytes.count))
                let seconds = UInt32(e.timestamp_ns / 1_000_000_000)
                XCTAssert(seconds + 2 >= monotonicSeconds() && seconds <= monotonicSeconds(), "timestamp is now")
            },
            Step(.toEndpoint, .tcp(Net.world6, Net.ep6, sport: 1234, dport: 22), .drop(NA_DROP_POLICY)) { _, events in
                let e = try XCTUnwrap(events.first)
                XCTAssertEqual(UInt32(e.direction), NA_DIR_INGRESS.rawValue)
                XCTAssertEqual(UInt32(e.family), UInt32(NA_FAMILY_IPV6))
                XCTAssertEqual(tupleBytes(e.saddr), ipv6Address(Net.world6))
                XCTAssertEqual(e.src_identity, NA_ID_WORLD.rawValue)
                XCTAssertEqual(e.dst_identity, Net.epIdentity)
            },
        ]),
    Fixture(
        "allowed new flows emit events when configured; established packets do not",
        setup: Setup(
            policy: [.egress(Net.peerIdentity, Proto.tcp, 80)],
            config: configured(flags: UInt32(NA_CFG_EVENTS_ALLOWED | NA_CFG_EVENTS_DROPPED))),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .pass, events: 1) { _, events in
                let e = try XCTUnwrap(events.first)
                XCTAssertEqual(e.verdict, UInt8(NA_VERDICT_FORWARDED.rawValue))
                XCTAssertEqual(e.reason, 0)
                XCTAssertEqual(e.rule_id, 7)
            },
            Step(
                .toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 80, dport: 40000, flags: [.syn, .ack]), .pass, events: 0),
            Step(.fromEndpoint, .udp(Net.ep4, Net.peer4, dport: 80), .drop(NA_DROP_POLICY), events: 1),
        ]),
    Fixture(
        "allowed-flow events are sampled 1 in allowed_sample_rate",
        setup: Setup(
            endpoint: Setup.Endpoint(enforceIngress: false, enforceEgress: false),
            config: configured(flags: UInt32(NA_CFG_EVENTS_ALLOWED), sampleRate: UInt32.max)),
        // 1 in 2^32-1: three new flows report nothing unless sampling is ignored
        (1...3).map { Step(.fromEndpoint, .udp(Net.ep4, Net.world4, dport: UInt16($0)), .pass, events: 0) }),
    Fixture(
        "no drop events when the config leaves NA_CFG_EVENTS_DROPPED out",
        setup: Setup(config: configured(flags: UInt32(NA_CFG_EVENTS_ALLOWED))),
        [Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .drop(NA_DROP_POLICY), events: 0)]),
]
