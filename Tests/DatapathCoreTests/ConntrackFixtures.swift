import CNodeABI
import DatapathCore
import XCTest

/// Conntrack: replies pass where policy would drop them, TCP state drives lifetimes, ICMP echo ids and
/// IP fragments are tracked, expired entries count as absent.
let conntrackFixtures: [Fixture] = [
    Fixture(
        "TCP: replies of an allowed egress flow pass with ingress enforced and no ingress rules",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80, flags: .syn), .pass) { h, _ in
                try expectCT(h, egressKey, flags: 0, lifetime: 60, packets: 1)
                let entry = try XCTUnwrap(h.conntrack.lookup(egressKey))
                XCTAssertEqual(entry.ep_id, Net.epID)
                XCTAssertEqual(entry.src_identity, Net.peerIdentity)
                XCTAssertEqual(entry.rule_id, 7)
                XCTAssertEqual(entry.bytes, UInt64(Packet.tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80).bytes.count))
            },
            Step(.toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 80, dport: 40000, flags: [.syn, .ack]), .pass) { h, _ in
                try expectCT(h, egressKey, flags: NA_CT_SEEN_REPLY, lifetime: 60, packets: 2)
            },
            Step(.toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 5555, dport: 80, flags: .syn), .drop(NA_DROP_POLICY)),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80, flags: .ack), .pass) { h, _ in
                try expectCT(h, egressKey, flags: NA_CT_SEEN_REPLY | NA_CT_SEEN_NON_SYN, lifetime: 8000, packets: 3)
            },
            Step(.toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 80, dport: 40000, flags: [.fin, .ack]), .pass) { h, _ in
                try expectCT(
                    h, egressKey, flags: NA_CT_SEEN_REPLY | NA_CT_SEEN_NON_SYN | NA_CT_CLOSING, lifetime: 10, packets: 4
                )
            },
            // A SYN reusing the tuple of a closing connection is a new connection: policy again, fresh state.
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80, flags: .syn), .pass) { h, _ in
                try expectCT(h, egressKey, flags: 0, lifetime: 60, packets: 1)
            },
        ]),
    Fixture(
        "TCP: replies of an allowed ingress flow pass with egress enforced and no egress rules",
        setup: Setup(policy: [.ingress(Net.peerIdentity, Proto.tcp, 8080)]),
        [
            Step(.toEndpoint, .tcp(Net.peer6, Net.ep6, sport: 5555, dport: 8080, flags: .syn), .pass),
            Step(.fromEndpoint, .tcp(Net.ep6, Net.peer6, sport: 8080, dport: 5555, flags: [.syn, .ack]), .pass),
            Step(.toEndpoint, .tcp(Net.peer6, Net.ep6, sport: 5555, dport: 8080, flags: .ack), .pass),
            Step(.fromEndpoint, .tcp(Net.ep6, Net.peer6, sport: 8080, dport: 5556, flags: .syn), .drop(NA_DROP_POLICY)),
            // A SYN is never a reply: on the reverse of the tracked flow's tuple it opens a connection of its own,
            // which egress policy refuses, while the flow's own packets still pass.
            Step(.fromEndpoint, .tcp(Net.ep6, Net.peer6, sport: 8080, dport: 5555, flags: .syn), .drop(NA_DROP_POLICY)),
            Step(.fromEndpoint, .tcp(Net.ep6, Net.peer6, sport: 8080, dport: 5555, flags: .ack), .pass),
        ]),
    Fixture(
        "ICMP echo: the reply with the request's id passes, others go to policy",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.icmp)]),
        [
            Step(.fromEndpoint, .icmp(Net.ep4, Net.peer4, type: 8, id: 0x1234), .pass),
            Step(.toEndpoint, .icmp(Net.peer4, Net.ep4, type: 0, id: 0x1234), .pass),
            Step(.toEndpoint, .icmp(Net.peer4, Net.ep4, type: 0, id: 0x9999), .drop(NA_DROP_POLICY)),
            Step(.toEndpoint, .icmp(Net.peer4, Net.ep4, type: 8, id: 0x1234), .drop(NA_DROP_POLICY)),
            Step(.fromEndpoint, .icmp(Net.ep4, Net.subnet4, type: 8, id: 0x1234), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "ICMPv6 echo: the reply with the request's id passes, others go to policy",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.icmpv6)]),
        [
            Step(.fromEndpoint, .icmpv6(Net.ep6, Net.peer6, type: 128, id: 77), .pass),
            Step(.toEndpoint, .icmpv6(Net.peer6, Net.ep6, type: 129, id: 77), .pass),
            Step(.toEndpoint, .icmpv6(Net.peer6, Net.ep6, type: 129, id: 78), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "UDP: replies pass; lifetime from na_config",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.udp, 53)], config: configured(nontcp: 123)),
        [
            Step(.fromEndpoint, .udp(Net.ep4, Net.peer4, sport: 40000, dport: 53), .pass) { h, _ in
                let key = ctKey(Net.ep4, Net.peer4, sport: 40000, dport: 53, proto: Proto.udp, NA_DIR_EGRESS)
                try expectCT(h, key, flags: 0, lifetime: 123, packets: 1)
            },
            Step(.toEndpoint, .udp(Net.peer4, Net.ep4, sport: 53, dport: 40000), .pass),
            // drop events are off once the agent wrote a config without NA_CFG_EVENTS_DROPPED
            Step(.toEndpoint, .udp(Net.peer4, Net.ep4, sport: 53, dport: 40001), .drop(NA_DROP_POLICY), events: 0),
        ]),
    Fixture(
        "an expired entry still in the map is a miss",
        setup: Setup(conntrack: [(egressKey, ctEntry(lifetime: monotonicSeconds() - 5))]),
        [
            Step(
                .toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 80, dport: 40000, flags: [.syn, .ack]),
                .drop(NA_DROP_POLICY))
        ]),
    Fixture(
        "a SYN on an expired entry's tuple is a new flow: denied, the entry is left as it was; allowed, it becomes the "
            + "new flow's",
        setup: Setup(
            policy: [.egress(Net.peerIdentity, Proto.tcp, 80)],
            conntrack: [(egressKey, staleEntry()), (deniedStaleKey, staleEntry())]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40001, dport: 81, flags: .syn), .drop(NA_DROP_POLICY)) {
                h, _ in
                let entry = try XCTUnwrap(h.conntrack.lookup(deniedStaleKey))
                XCTAssertEqual(entry.lifetime, staleEntry().lifetime)
                XCTAssertEqual(entry.packets, 500)
                XCTAssertEqual(entry.rule_id, 99)
            },
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80, flags: .syn), .pass) { h, _ in
                try expectCT(h, egressKey, flags: 0, lifetime: 60, packets: 1)
                let entry = try XCTUnwrap(h.conntrack.lookup(egressKey))
                XCTAssertEqual(entry.rule_id, 7)
                XCTAssertEqual(entry.src_identity, Net.peerIdentity)
                XCTAssertEqual(entry.policy_revision, 1)
                XCTAssertGreaterThanOrEqual(entry.created, monotonicSeconds() - 2)
            },
            Step(.toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 80, dport: 40000, flags: [.syn, .ack]), .pass) { h, _ in
                try expectCT(h, egressKey, flags: NA_CT_SEEN_REPLY, lifetime: 60, packets: 2)
            },
        ]),
    Fixture(
        "a live entry lets the reply through",
        setup: Setup(conntrack: [(egressKey, ctEntry(lifetime: monotonicSeconds() + 1000))]),
        [Step(.toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 80, dport: 40000, flags: [.syn, .ack]), .pass)]),
    Fixture(
        "a reply costs one lookup: the ports pick which key is tried first, both are tried on a miss",
        setup: Setup(conntrack: [
            (egressKey, ctEntry(lifetime: monotonicSeconds() + 1000)),
            (
                ctKey(Net.peer4, Net.ep4, sport: 80, dport: 40000, proto: Proto.tcp, NA_DIR_INGRESS),
                ctEntry(lifetime: monotonicSeconds() + 1000)
            ),
            (
                ctKey(Net.peer4, Net.ep4, sport: 5555, dport: 8080, proto: Proto.tcp, NA_DIR_INGRESS),
                ctEntry(lifetime: monotonicSeconds() + 1000)
            ),
        ]),
        [
            // From the lower port to the higher: the reversed key first. Both keys are live here (a simultaneous
            // open), so the order decides: the egress flow's entry takes the packet, the ingress one does not.
            Step(.toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 80, dport: 40000, flags: .ack), .pass) { h, _ in
                XCTAssertEqual(try h.conntrack.lookup(egressKey)?.packets, 1)
                let ingress = ctKey(Net.peer4, Net.ep4, sport: 80, dport: 40000, proto: Proto.tcp, NA_DIR_INGRESS)
                XCTAssertEqual(try h.conntrack.lookup(ingress)?.packets, 0)
            },
            // A request to a server's higher port guesses wrong (reply first) and finds its own entry second.
            Step(.toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 5555, dport: 8080, flags: .ack), .pass) { h, _ in
                let key = ctKey(Net.peer4, Net.ep4, sport: 5555, dport: 8080, proto: Proto.tcp, NA_DIR_INGRESS)
                XCTAssertEqual(try h.conntrack.lookup(key)?.packets, 1)
            },
            // And its answer, from the higher port to the lower, tries its own tuple first, then the reverse.
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 8080, dport: 5555, flags: .ack), .pass) { h, _ in
                let key = ctKey(Net.peer4, Net.ep4, sport: 5555, dport: 8080, proto: Proto.tcp, NA_DIR_INGRESS)
                XCTAssertEqual(try h.conntrack.lookup(key)?.packets, 2)
                XCTAssertEqual(try h.conntrack.lookup(key)?.flags, NA_CT_SEEN_REPLY | NA_CT_SEEN_NON_SYN)
            },
        ]),
    Fixture(
        "IPv4 fragments: later fragments take the ports of the first",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.udp, 53)]),
        [
            Step(
                .fromEndpoint,
                Packet.udp(Net.ep4, Net.peer4, dport: 53).ipv4 {
                    $0.id = 0x77
                    $0.moreFragments = true
                }, .pass
            ) {
                h, _ in XCTAssertEqual(try h.frags.entries().count, 1)
            },
            Step(.fromEndpoint, laterFragment4(id: 0x77), .pass),
            Step(.fromEndpoint, laterFragment4(id: 0x78), .drop(NA_DROP_FRAG_NOSUPPORT)),
            Step(
                .fromEndpoint,
                Packet.udp(Net.ep4, Net.peer4, dport: 54).ipv4 {
                    $0.id = 0x79
                    $0.moreFragments = true
                }, .drop(NA_DROP_POLICY)),
            Step(.fromEndpoint, laterFragment4(id: 0x79), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "IPv6 fragments: later fragments take the ports of the first",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.udp, 53)]),
        [
            Step(
                .fromEndpoint,
                Packet.udp(Net.ep6, Net.peer6, dport: 53).ipv6 {
                    $0.extensionHeaders = [.fragment(offset: 0, more: true, id: 9)]
                },
                .pass),
            Step(.fromEndpoint, laterFragment6(id: 9), .pass),
            Step(.fromEndpoint, laterFragment6(id: 10), .drop(NA_DROP_FRAG_NOSUPPORT)),
        ]),
]

/// The conntrack key of the fixtures' egress TCP flow ep4:40000 -> peer4:80.
let egressKey = ctKey(Net.ep4, Net.peer4, sport: 40000, dport: 80, proto: Proto.tcp, NA_DIR_EGRESS)

func ctKey(
    _ source: String, _ destination: String, sport: UInt16, dport: UInt16, proto: UInt8, _ direction: na_direction
)
    -> na_ct_key
{
    var key = na_ct_key()
    let v6 = source.contains(":")
    setTupleBytes(&key.saddr, v6 ? ipv6Address(source) : ipv4Address(source))
    setTupleBytes(&key.daddr, v6 ? ipv6Address(destination) : ipv4Address(destination))
    key.sport = sport.bigEndian
    key.dport = dport.bigEndian
    key.proto = proto
    key.family = UInt8(v6 ? NA_FAMILY_IPV6 : NA_FAMILY_IPV4)
    key.direction = UInt8(direction.rawValue)
    return key
}

let deniedStaleKey = ctKey(Net.ep4, Net.peer4, sport: 40001, dport: 81, proto: Proto.tcp, NA_DIR_EGRESS)

/// Five seconds ago, fixed once for the setup and the checks alike.
let staleLifetime: UInt32 = monotonicSeconds() > 5 ? monotonicSeconds() - 5 : 0

/// An entry of a flow long over: expired, closing, with state of its own that a new flow must not inherit.
func staleEntry() -> na_ct_value {
    var value = ctEntry(lifetime: staleLifetime)
    value.flags = UInt32(NA_CT_SEEN_NON_SYN | NA_CT_SEEN_REPLY | NA_CT_CLOSING)
    value.src_identity = 4242
    value.rule_id = 99
    value.created = 1
    value.packets = 500
    value.bytes = 70_000
    return value
}

func ctEntry(lifetime: UInt32) -> na_ct_value {
    var value = na_ct_value()
    value.lifetime = lifetime
    value.ep_id = Net.epID
    value.src_identity = Net.peerIdentity
    value.policy_revision = 1  // the fixture endpoint's policy generation: no re-check
    return value
}

/// A config the agent wrote: lifetimes set, flags as given (no drop events unless asked for).
func configured(nontcp: UInt32 = 60, flags: UInt32 = 0, sampleRate: UInt32 = 0) -> na_config {
    var config = na_config()
    config.ct_lifetime_tcp = 8000
    config.ct_lifetime_syn = 60
    config.ct_lifetime_closing = 10
    config.ct_lifetime_nontcp = nontcp
    config.flags = flags
    config.allowed_sample_rate = sampleRate
    return config
}

/// A non-first IPv4 fragment of a UDP datagram ep4 -> peer4 (no UDP header).
func laterFragment4(id: UInt16) -> Packet {
    var packet = Packet(
        network: .ip(Net.ep4, Net.peer4), transport: .none(proto: Proto.udp), payload: Array(repeating: 7, count: 24))
    packet = packet.ipv4 {
        $0.id = id
        $0.fragmentOffset = 100
    }
    return packet
}

/// A non-first IPv6 fragment of a UDP datagram ep6 -> peer6.
func laterFragment6(id: UInt32) -> Packet {
    Packet(
        network: .ip(Net.ep6, Net.peer6), transport: .none(proto: Proto.udp), payload: Array(repeating: 7, count: 24)
    ).ipv6 {
        $0.extensionHeaders = [.fragment(offset: 100, more: false, id: id)]
    }
}

/// Asserts the entry's state flags, its lifetime relative to now (within 2 s) and its packet count.
func expectCT(
    _ h: DatapathHarness, _ key: na_ct_key, flags: UInt32, lifetime: UInt32, packets: UInt64,
    file: StaticString = #filePath, line: UInt = #line
) throws {
    let entry = try XCTUnwrap(h.conntrack.lookup(key), "conntrack entry", file: file, line: line)
    let now = monotonicSeconds()
    XCTAssertEqual(entry.flags, flags, "conntrack flags", file: file, line: line)
    XCTAssert(
        entry.lifetime >= now + lifetime - 2 && entry.lifetime <= now + lifetime + 1,
        "lifetime \(entry.lifetime) is not now (\(now)) + \(lifetime)", file: file, line: line)
    XCTAssertEqual(entry.packets, packets, "conntrack packets", file: file, line: line)
}
