import CNodeABI

/// Header parsing: what passes untouched (non-IP), what is malformed or truncated,
/// VLAN tags, IPv4 options, IPv6 extension headers, the endpoint lookup and the source-address check.
let parsingFixtures: [Fixture] = [
    Fixture(
        "ARP passes in both directions, even on an interface without endpoint",
        setup: Setup(endpoint: nil),
        [
            Step(.fromEndpoint, Packet.arpRequest, .pass),
            Step(.toEndpoint, Packet.arpRequest, .pass),
        ]),
    Fixture(
        "neighbor solicitation passes on an interface without endpoint",
        setup: Setup(endpoint: nil),
        [Step(.fromEndpoint, .icmpv6("::", "ff02::1:ff00:5", type: 135), .pass)]),
    Fixture(
        "no endpoint for the interface: fail closed",
        setup: Setup(endpoint: Setup.Endpoint(ifindex: 9999), policy: [.egress(0), .ingress(0)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .drop(NA_DROP_NO_CONFIG)),
            Step(.toEndpoint, .udp(Net.peer6, Net.ep6, dport: 53), .drop(NA_DROP_NO_CONFIG)),
        ]),
    Fixture(
        "spoofed source addresses",
        setup: Setup(policy: [.egress(0)]),
        [
            Step(.fromEndpoint, .tcp("10.0.1.99", Net.peer4, dport: 80), .drop(NA_DROP_INVALID_SIP)),
            Step(.fromEndpoint, .tcp("fd00::99", Net.peer6, dport: 80), .drop(NA_DROP_INVALID_SIP)),
            Step(.fromEndpoint, .icmp("10.0.1.99", Net.peer4, type: 3, code: 1), .drop(NA_DROP_INVALID_SIP)),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .pass),
            Step(.fromEndpoint, .tcp(Net.ep6, Net.peer6, dport: 80), .pass),
        ]),
    Fixture(
        "an address family the endpoint has no address of is spoofed",
        setup: Setup(endpoint: Setup.Endpoint(ipv6: nil), policy: [.egress(0)]),
        [Step(.fromEndpoint, .tcp(Net.ep6, Net.peer6, dport: 80), .drop(NA_DROP_INVALID_SIP))]),
    Fixture(
        "an IPv6 link-local source is the endpoint's own and goes on to policy",
        setup: Setup(policy: [.egress(NA_ID_WORLD.rawValue, Proto.icmpv6)]),
        [
            Step(.fromEndpoint, .icmpv6("fe80::5", "fe80::1", type: 128, id: 3), .pass),
            Step(.fromEndpoint, .tcp("fe80::5", "fe80::1", dport: 22), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "truncated and malformed IPv4",
        setup: Setup(policy: [.egress(0)]),
        [
            // IPv4 header cut after 12 of its 20 bytes. Untagged, the kernel refuses such a test packet
            // (test_run: EINVAL when an ETH_P_IP skb is shorter than an IPv4 header); behind a VLAN tag it
            // reaches the program as it would on the wire.
            Step(.fromEndpoint, tagged(.tcp(Net.ep4, Net.peer4, dport: 80)).truncated(to: 30), .drop(NA_DROP_INVALID)),
            // header length 4 words (< 20 bytes)
            Step(.fromEndpoint, Packet.tcp(Net.ep4, Net.peer4, dport: 80).ipv4 { $0.ihl = 4 }, .drop(NA_DROP_INVALID)),
            // header length 15 words, beyond the end of the packet
            Step(.fromEndpoint, Packet.tcp(Net.ep4, Net.peer4, dport: 80).ipv4 { $0.ihl = 15 }, .drop(NA_DROP_INVALID)),
            // total length beyond the frame
            Step(
                .fromEndpoint, Packet.tcp(Net.ep4, Net.peer4, dport: 80).ipv4 { $0.totalLength = 200 },
                .drop(NA_DROP_INVALID)),
            // version 6 in an IPv4 frame
            Step(.fromEndpoint, Packet.tcp(Net.ep4, Net.peer4, dport: 80).patched([14: 0x65]), .drop(NA_DROP_INVALID)),
            // the well-formed packet passes
            Step(.fromEndpoint, Packet.tcp(Net.ep4, Net.peer4, dport: 80), .pass),
        ]),
    Fixture(
        "truncated and malformed L4 headers",
        setup: Setup(policy: [.egress(0)]),
        [
            // TCP header of 10 bytes, consistent IP total length
            Step(
                .fromEndpoint, Packet.tcp(Net.ep4, Net.peer4, dport: 80).ipv4 { $0.totalLength = 30 }.truncated(to: 44),
                .drop(NA_DROP_INVALID)),
            // TCP header past the IP total length, in what would be Ethernet padding
            Step(
                .fromEndpoint, Packet.tcp(Net.ep4, Net.peer4, dport: 80).ipv4 { $0.totalLength = 30 },
                .drop(NA_DROP_INVALID)),
            // TCP data offset 4 words (< 20 bytes)
            Step(.fromEndpoint, Packet.tcp(Net.ep4, Net.peer4, dport: 80).patched([46: 0x40]), .drop(NA_DROP_INVALID)),
            // TCP data offset 15 words, beyond the packet
            Step(.fromEndpoint, Packet.tcp(Net.ep4, Net.peer4, dport: 80).patched([46: 0xf0]), .drop(NA_DROP_INVALID)),
            // UDP header of 4 bytes
            Step(
                .fromEndpoint, Packet.udp(Net.ep4, Net.peer4, dport: 53).ipv4 { $0.totalLength = 24 }.truncated(to: 38),
                .drop(NA_DROP_INVALID)),
            // ICMP header of 4 bytes
            Step(
                .fromEndpoint,
                Packet.icmp(Net.ep4, Net.peer4, type: 8, id: 1).ipv4 { $0.totalLength = 24 }.truncated(to: 38),
                .drop(NA_DROP_INVALID)),
            // TCP over IPv6, header cut to 8 bytes
            Step(
                .fromEndpoint,
                Packet.tcp(Net.ep6, Net.peer6, dport: 80).ipv6 { $0.payloadLength = 8 }.truncated(to: 62),
                .drop(NA_DROP_INVALID)),
        ]),
    Fixture(
        "truncated VLAN tag and IPv6 header",
        setup: Setup(policy: [.egress(0)]),
        [
            Step(
                .fromEndpoint, Packet(vlans: [5], network: .ip(Net.ep4, Net.peer4)).truncated(to: 16),
                .drop(NA_DROP_INVALID)),
            // IPv6 header cut after 26 of its 40 bytes (tagged, for the reason above)
            Step(.fromEndpoint, tagged(.tcp(Net.ep6, Net.peer6, dport: 80)).truncated(to: 44), .drop(NA_DROP_INVALID)),
            // payload length beyond the frame
            Step(
                .fromEndpoint, Packet.tcp(Net.ep6, Net.peer6, dport: 80).ipv6 { $0.payloadLength = 400 },
                .drop(NA_DROP_INVALID)),
        ]),
    Fixture(
        "VLAN-tagged frames are parsed inside the tags",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80)]),
        [
            Step(
                .fromEndpoint,
                Packet(vlans: [5], network: .ip(Net.ep4, Net.peer4), transport: .tcp(sport: 1, dport: 80, flags: .syn)),
                .pass),
            Step(
                .fromEndpoint,
                Packet(
                    vlans: [5, 6], network: .ip(Net.ep4, Net.peer4), transport: .tcp(sport: 1, dport: 81, flags: .syn)),
                .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "IPv4 options: ports are read after them",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80)]),
        [
            Step(.fromEndpoint, Packet.tcp(Net.ep4, Net.peer4, dport: 80).ipv4 { $0.options = [1, 1, 1, 0] }, .pass),
            Step(
                .fromEndpoint,
                Packet.tcp(Net.ep4, Net.peer4, dport: 81).ipv4 { $0.options = [1, 1, 1, 1, 1, 1, 1, 0] },
                .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "IPv6 extension headers are walked to the transport header",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80)]),
        [
            Step(
                .fromEndpoint,
                Packet.tcp(Net.ep6, Net.peer6, dport: 80).ipv6 {
                    $0.extensionHeaders = [.hopByHop, .destinationOptions, .routing, .destinationOptions]
                }, .pass),
            Step(
                .fromEndpoint,
                Packet.tcp(Net.ep6, Net.peer6, dport: 81).ipv6 { $0.extensionHeaders = [.hopByHop, .routing] },
                .drop(NA_DROP_POLICY)),
            // more extension headers than the walk follows
            Step(
                .fromEndpoint,
                Packet.tcp(Net.ep6, Net.peer6, dport: 80).ipv6 {
                    $0.extensionHeaders = Array(repeating: .destinationOptions, count: 9)
                }, .drop(NA_DROP_INVALID)),
            // an extension header whose length runs past the packet
            Step(
                .fromEndpoint,
                Packet(network: .ip(Net.ep6, Net.peer6), transport: .none(proto: 59)).ipv6 {
                    $0.extensionHeaders = [.hopByHop]
                }.patched([55: 9]), .drop(NA_DROP_INVALID)),
        ]),
]

/// The packet behind one 802.1Q tag.
func tagged(_ packet: Packet, vlan: UInt16 = 5) -> Packet {
    var copy = packet
    copy.vlans = [vlan]
    return copy
}
