import CNodeABI
import DatapathCore
import XCTest

/// ICMP errors pass only when the packet they quote belongs to a live flow of the endpoint, in either
/// orientation; redirects from the endpoint never pass; truncated or fragmented errors are dropped.
let icmpErrorFixtures: [Fixture] = [
    Fixture(
        "an error about the endpoint's egress flow reaches it; one about another flow is dropped",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.udp, 53)]),
        [
            Step(.fromEndpoint, .udp(Net.ep4, Net.peer4, sport: 40000, dport: 53), .pass),
            // port unreachable from the peer, quoting the datagram the endpoint sent
            Step(.toEndpoint, icmpError(Net.peer4, Net.ep4, type: 3, code: 3, quoting: dns4(sport: 40000)), .pass),
            // time exceeded from a router on the way
            Step(.toEndpoint, icmpError(Net.world4, Net.ep4, type: 11, quoting: dns4(sport: 40000)), .pass) { h, _ in
                // errors only read the entry: neither counted as its packets nor extending its lifetime
                let key = ctKey(Net.ep4, Net.peer4, sport: 40000, dport: 53, proto: Proto.udp, NA_DIR_EGRESS)
                try expectCT(h, key, flags: 0, lifetime: 60, packets: 1)
            },
            Step(
                .toEndpoint, icmpError(Net.peer4, Net.ep4, type: 3, code: 3, quoting: dns4(sport: 40001)),
                .drop(NA_DROP_ICMP_NO_FLOW)
            ) { _, events in
                let e = try XCTUnwrap(events.first)
                XCTAssertEqual(e.proto, Proto.icmp)
                XCTAssertEqual(e.ep_id, Net.epID)
                XCTAssertEqual(e.src_identity, Net.peerIdentity, "the error's sender")
                XCTAssertEqual(e.dst_identity, Net.epIdentity)
            },
            // the same datagram quoted as if it had come from the peer: the flow's other direction
            Step(
                .toEndpoint,
                icmpError(
                    Net.peer4, Net.ep4, type: 3, code: 3, quoting: .udp(Net.peer4, Net.ep4, sport: 53, dport: 40000)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
            Step(
                .toEndpoint, icmpError(Net.world4, Net.ep4, type: 4, quoting: dns4(sport: 9)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
            Step(
                .toEndpoint, icmpError(Net.world4, Net.ep4, type: 12, quoting: dns4(sport: 9)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
        ]),
    Fixture(
        "the endpoint's port unreachable for an ingress flow passes; for no flow it is dropped",
        setup: Setup(policy: [.ingress(Net.peerIdentity, Proto.udp, 9999)]),
        [
            Step(.toEndpoint, .udp(Net.peer4, Net.ep4, sport: 40000, dport: 9999), .pass),
            Step(
                .fromEndpoint,
                icmpError(
                    Net.ep4, Net.peer4, type: 3, code: 3, quoting: .udp(Net.peer4, Net.ep4, sport: 40000, dport: 9999)),
                .pass),
            Step(
                .fromEndpoint,
                icmpError(
                    Net.ep4, Net.peer4, type: 3, code: 3, quoting: .udp(Net.peer4, Net.ep4, sport: 40000, dport: 9998)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
        ]),
    Fixture(
        "errors quoting a reply of the flow pass in both directions (the reversed tuple)",
        setup: Setup(policy: [.ingress(Net.peerIdentity, Proto.tcp, 8080), .egress(Net.peerIdentity, Proto.udp, 53)]),
        [
            // ingress flow peer:5555 -> ep:8080; the endpoint's SYN-ACK is a reply; a router reports it undeliverable
            Step(.toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 5555, dport: 8080, flags: .syn), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 8080, dport: 5555, flags: [.syn, .ack]), .pass),
            Step(
                .toEndpoint,
                icmpError(
                    Net.world4, Net.ep4, type: 11,
                    quoting: .tcp(Net.ep4, Net.peer4, sport: 8080, dport: 5555, flags: [.syn, .ack])), .pass),
            // egress flow ep:40000 -> peer:53; the peer's answer arrives after the socket closed: port unreachable
            Step(.fromEndpoint, .udp(Net.ep4, Net.peer4, sport: 40000, dport: 53), .pass),
            Step(.toEndpoint, .udp(Net.peer4, Net.ep4, sport: 53, dport: 40000), .pass),
            Step(
                .fromEndpoint,
                icmpError(
                    Net.ep4, Net.peer4, type: 3, code: 3, quoting: .udp(Net.peer4, Net.ep4, sport: 53, dport: 40000)),
                .pass),
            Step(
                .fromEndpoint,
                icmpError(
                    Net.ep4, Net.peer4, type: 3, code: 3, quoting: .udp(Net.peer4, Net.ep4, sport: 53, dport: 40001)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
        ]),
    Fixture(
        "errors about ICMP echo: the quoted id must be the tracked one",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.icmp), .egress(Net.peerIdentity, Proto.icmpv6)]),
        [
            Step(.fromEndpoint, .icmp(Net.ep4, Net.peer4, type: 8, id: 0x1234), .pass),
            Step(
                .toEndpoint,
                icmpError(
                    Net.world4, Net.ep4, type: 3, code: 1, quoting: .icmp(Net.ep4, Net.peer4, type: 8, id: 0x1234)),
                .pass),
            Step(
                .toEndpoint,
                icmpError(
                    Net.world4, Net.ep4, type: 3, code: 1, quoting: .icmp(Net.ep4, Net.peer4, type: 8, id: 0x4321)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
            Step(.fromEndpoint, .icmpv6(Net.ep6, Net.peer6, type: 128, id: 77), .pass),
            Step(
                .toEndpoint,
                icmpError(Net.world6, Net.ep6, type: 3, quoting: .icmpv6(Net.ep6, Net.peer6, type: 128, id: 77)),
                .pass),
            Step(
                .toEndpoint,
                icmpError(Net.world6, Net.ep6, type: 3, quoting: .icmpv6(Net.ep6, Net.peer6, type: 128, id: 78)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
            // an error about an error names no flow (and none is ever sent: RFC 1122 3.2.2)
            Step(
                .toEndpoint,
                icmpError(Net.world4, Net.ep4, type: 3, quoting: .icmp(Net.ep4, Net.peer4, type: 3, code: 3)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
        ]),
    Fixture(
        "IPv6 packet too big for a real flow passes, also past extension headers in the quote",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep6, Net.peer6, sport: 40000, dport: 80, flags: .syn), .pass),
            Step(.toEndpoint, icmpError(Net.world6, Net.ep6, type: 2, quoting: https6(sport: 40000)), .pass),
            Step(
                .toEndpoint,
                icmpError(
                    Net.world6, Net.ep6, type: 2,
                    quoting: https6(sport: 40000).ipv6 { $0.extensionHeaders = [.hopByHop, .destinationOptions] }),
                .pass),
            Step(
                .toEndpoint, icmpError(Net.world6, Net.ep6, type: 2, quoting: https6(sport: 40002)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
            // a quoted later fragment carries no ports
            Step(
                .toEndpoint, icmpError(Net.world6, Net.ep6, type: 2, quoting: laterFragment6(id: 3)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
            Step(
                .toEndpoint, icmpError(Net.world4, Net.ep4, type: 3, code: 4, quoting: laterFragment4(id: 3)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
        ]),
    Fixture(
        "a flow of another endpoint, or an expired one, does not relate the error",
        setup: Setup(conntrack: [
            (ctKey(Net.ep4, Net.peer4, sport: 40000, dport: 53, proto: Proto.udp, NA_DIR_EGRESS), otherEndpointsEntry),
            (
                ctKey(Net.ep4, Net.peer4, sport: 40001, dport: 53, proto: Proto.udp, NA_DIR_EGRESS),
                ctEntry(lifetime: monotonicSeconds() - 5)
            ),
            (
                ctKey(Net.ep4, Net.peer4, sport: 40002, dport: 53, proto: Proto.udp, NA_DIR_EGRESS),
                ctEntry(lifetime: monotonicSeconds() + 1000)
            ),
        ]),
        [
            Step(
                .toEndpoint, icmpError(Net.peer4, Net.ep4, type: 3, code: 3, quoting: dns4(sport: 40000)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
            Step(
                .toEndpoint, icmpError(Net.peer4, Net.ep4, type: 3, code: 3, quoting: dns4(sport: 40001)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
            Step(.toEndpoint, icmpError(Net.peer4, Net.ep4, type: 3, code: 3, quoting: dns4(sport: 40002)), .pass),
        ]),
    Fixture(
        "the endpoint never sends a redirect, whatever it quotes",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.udp, 53)]),
        [
            Step(.fromEndpoint, .udp(Net.ep4, Net.peer4, sport: 40000, dport: 53), .pass),
            Step(
                .fromEndpoint, icmpError(Net.ep4, Net.peer4, type: 5, code: 1, quoting: dns4(sport: 40000)),
                .drop(NA_DROP_ICMP_REDIRECT)),
            Step(
                .fromEndpoint, icmpError(Net.ep4, Net.peer4, type: 5, quoting: dns4(sport: 1)),
                .drop(NA_DROP_ICMP_REDIRECT)),
            // towards the endpoint a redirect is an error like the others: it must quote a flow
            Step(.toEndpoint, icmpError(Net.world4, Net.ep4, type: 5, quoting: dns4(sport: 40000)), .pass),
            Step(
                .toEndpoint, icmpError(Net.world4, Net.ep4, type: 5, quoting: dns4(sport: 1)),
                .drop(NA_DROP_ICMP_NO_FLOW)),
        ]),
    Fixture(
        "truncated, mismatched and fragmented errors are invalid",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.udp, 53), .egress(Net.peerIdentity, Proto.tcp, 80)]),
        [
            Step(.fromEndpoint, .udp(Net.ep4, Net.peer4, sport: 40000, dport: 53), .pass),
            Step(.fromEndpoint, .tcp(Net.ep6, Net.peer6, sport: 40000, dport: 80, flags: .syn), .pass),
            // the full IPv4 header but only 4 bytes of UDP
            Step(
                .toEndpoint, icmpError(Net.peer4, Net.ep4, type: 3, code: 3, quoting: dns4(sport: 40000), quote: 24),
                .drop(NA_DROP_INVALID)),
            // exactly the IP header and 8 bytes of L4: enough
            Step(
                .toEndpoint, icmpError(Net.peer4, Net.ep4, type: 3, code: 3, quoting: dns4(sport: 40000), quote: 28),
                .pass),
            // half an IPv4 header, and nothing at all
            Step(
                .toEndpoint, icmpError(Net.peer4, Net.ep4, type: 3, code: 3, quoting: dns4(sport: 40000), quote: 10),
                .drop(NA_DROP_INVALID)),
            Step(
                .toEndpoint, icmpError(Net.peer4, Net.ep4, type: 3, code: 3, quoting: dns4(sport: 40000), quote: 0),
                .drop(NA_DROP_INVALID)),
            // an IPv4 header length past the quote
            Step(
                .toEndpoint,
                icmpError(Net.peer4, Net.ep4, type: 3, code: 3, quoting: dns4(sport: 40000).ipv4 { $0.ihl = 15 }),
                .drop(NA_DROP_INVALID)),
            // an IPv6 header cut after 30 bytes; then the full header with 4 bytes of TCP
            Step(
                .toEndpoint, icmpError(Net.world6, Net.ep6, type: 2, quoting: https6(sport: 40000), quote: 30),
                .drop(NA_DROP_INVALID)),
            Step(
                .toEndpoint, icmpError(Net.world6, Net.ep6, type: 2, quoting: https6(sport: 40000), quote: 44),
                .drop(NA_DROP_INVALID)),
            // ICMPv4 quoting an IPv6 packet, ICMPv6 quoting an IPv4 one
            Step(
                .toEndpoint, icmpError(Net.world4, Net.ep4, type: 3, quoting: https6(sport: 40000)),
                .drop(NA_DROP_INVALID)),
            Step(
                .toEndpoint, icmpError(Net.world6, Net.ep6, type: 1, quoting: dns4(sport: 40000)),
                .drop(NA_DROP_INVALID)),
            // the quote runs into Ethernet padding beyond the error's IP total length
            Step(
                .toEndpoint,
                icmpError(Net.peer4, Net.ep4, type: 3, code: 3, quoting: dns4(sport: 40000)).ipv4 {
                    $0.totalLength = 20 + 8 + 24
                },
                .drop(NA_DROP_INVALID)),
            // errors are never fragmented
            Step(
                .toEndpoint,
                icmpError(Net.peer4, Net.ep4, type: 3, code: 3, quoting: dns4(sport: 40000)).ipv4 {
                    $0.moreFragments = true
                },
                .drop(NA_DROP_FRAG_NOSUPPORT)),
        ]),
    Fixture(
        "a spoofed error from the endpoint is dropped before anything else",
        [
            Step(
                .fromEndpoint, icmpError("10.0.1.99", Net.peer4, type: 3, code: 3, quoting: dns4(sport: 1)),
                .drop(NA_DROP_INVALID_SIP))
        ]),
]

/// Neighbor discovery and MLD: towards the endpoint all passes; from it, host messages pass, router messages and
/// advertisements for foreign addresses do not.
let ndFixtures: [Fixture] = [
    Fixture(
        "towards the endpoint the node's ND and MLD pass without policy",
        [
            Step(.toEndpoint, .icmpv6("fe80::1", "ff02::1", type: 134), .pass),
            Step(.toEndpoint, .icmpv6("fe80::1", Net.ep6, type: 135), .pass),
            Step(.toEndpoint, neighborAdvert("fe80::1", Net.ep6, target: "fe80::1"), .pass),
            Step(.toEndpoint, .icmpv6("fe80::1", Net.ep6, type: 137), .pass),
            Step(.toEndpoint, .icmpv6("fe80::1", "ff02::1", type: 130), .pass),
        ]),
    Fixture(
        "from the endpoint: solicitations, its own advertisements and MLD reports pass",
        [
            // duplicate address detection: solicitation from the unspecified address
            Step(.fromEndpoint, .icmpv6("::", "ff02::1:ff00:5", type: 135), .pass),
            Step(.fromEndpoint, .icmpv6("fe80::5", "fe80::1", type: 135), .pass),
            Step(.fromEndpoint, .icmpv6("fe80::5", "ff02::2", type: 133), .pass),
            Step(.fromEndpoint, neighborAdvert("fe80::5", "fe80::1", target: Net.ep6), .pass),
            Step(.fromEndpoint, neighborAdvert("fe80::5", "fe80::1", target: "fe80::5"), .pass),
            Step(.fromEndpoint, .icmpv6("fe80::5", "ff02::16", type: 143), .pass),
            Step(.fromEndpoint, .icmpv6("fe80::5", "ff02::1:ff00:5", type: 131), .pass),
            Step(.fromEndpoint, .icmpv6("fe80::5", "ff02::2", type: 132), .pass),
            Step(.fromEndpoint, .icmpv6("::", "ff02::16", type: 143), .pass),
            Step(.fromEndpoint, .icmpv6(Net.ep6, "ff02::1:ff00:1", type: 135), .pass),
            Step(.fromEndpoint, neighborAdvert(Net.ep6, "fe80::1", target: Net.ep6), .pass),
        ]),
    Fixture(
        "from the endpoint: ND from another pod's address is spoofed",
        [
            Step(.fromEndpoint, .icmpv6(Net.peer6, "ff02::1:ff00:1", type: 135), .drop(NA_DROP_INVALID_SIP)),
            Step(.fromEndpoint, .icmpv6(Net.peer6, "ff02::2", type: 133), .drop(NA_DROP_INVALID_SIP)),
            Step(.fromEndpoint, .icmpv6(Net.peer6, "ff02::16", type: 143), .drop(NA_DROP_INVALID_SIP)),
            Step(.fromEndpoint, neighborAdvert(Net.peer6, "fe80::1", target: "fe80::5"), .drop(NA_DROP_INVALID_SIP)),
        ]),
    Fixture(
        "from the endpoint: router advertisements, redirects, MLD queries and others' advertisements are dropped",
        [
            Step(.fromEndpoint, .icmpv6("fe80::5", "ff02::1", type: 134), .drop(NA_DROP_ND_ROUTER_ADVERT)) {
                _, events in
                let e = try XCTUnwrap(events.first)
                XCTAssertEqual(e.ep_id, Net.epID)
                XCTAssertEqual(e.src_identity, Net.epIdentity)
            },
            Step(.fromEndpoint, .icmpv6("fe80::5", "fe80::1", type: 137), .drop(NA_DROP_ICMP_REDIRECT)),
            Step(.fromEndpoint, .icmpv6("fe80::5", "ff02::1", type: 130), .drop(NA_DROP_MLD_QUERY)),
            Step(.fromEndpoint, neighborAdvert("fe80::5", "fe80::1", target: Net.peer6), .drop(NA_DROP_ND_TARGET)),
            Step(.fromEndpoint, neighborAdvert("fe80::5", "ff02::1", target: Net.world6), .drop(NA_DROP_ND_TARGET)),
            Step(.fromEndpoint, neighborAdvert(Net.ep6, "fe80::1", target: "fd00::6"), .drop(NA_DROP_ND_TARGET)),
            // an advertisement without its target address
            Step(.fromEndpoint, .icmpv6("fe80::5", "fe80::1", type: 136), .drop(NA_DROP_INVALID)),
            // fragmented ND (RFC 6980)
            Step(
                .fromEndpoint,
                Packet.icmpv6("fe80::5", "ff02::2", type: 133).ipv6 {
                    $0.extensionHeaders = [.fragment(offset: 0, more: true, id: 1)]
                }, .drop(NA_DROP_INVALID)),
        ]),
    Fixture(
        "an endpoint without IPv6 advertises no global address",
        setup: Setup(endpoint: Setup.Endpoint(ipv6: nil)),
        [
            Step(.fromEndpoint, neighborAdvert("fe80::5", "fe80::1", target: Net.ep6), .drop(NA_DROP_ND_TARGET)),
            Step(.fromEndpoint, neighborAdvert("fe80::5", "fe80::1", target: "fe80::5"), .pass),
        ]),
    Fixture(
        "on an interface without endpoint: solicitations pass, advertisements of global addresses fail closed",
        setup: Setup(endpoint: nil),
        [
            Step(.fromEndpoint, .icmpv6("::", "ff02::1:ff00:5", type: 135), .pass),
            Step(.fromEndpoint, neighborAdvert("fe80::5", "fe80::1", target: "fe80::5"), .pass),
            Step(.fromEndpoint, neighborAdvert("fe80::5", "fe80::1", target: Net.ep6), .drop(NA_DROP_NO_CONFIG)),
            Step(.fromEndpoint, .icmpv6(Net.ep6, "ff02::1:ff00:1", type: 135), .drop(NA_DROP_NO_CONFIG)),
            Step(.fromEndpoint, .icmpv6("fe80::5", "ff02::1", type: 134), .drop(NA_DROP_ND_ROUTER_ADVERT)),
        ]),
]

/// An ICMP (IPv4 addresses) or ICMPv6 error from `source` to `destination` quoting `inner`'s IP packet, cut to its
/// first `quote` bytes when given.
func icmpError(
    _ source: String, _ destination: String, type: UInt8, code: UInt8 = 0, quoting inner: Packet, quote: Int? = nil
) -> Packet {
    let ip = Array(inner.bytes.dropFirst(14))
    var error =
        source.contains(":")
        ? Packet.icmpv6(source, destination, type: type, code: code)
        : Packet.icmp(source, destination, type: type, code: code)
    error.payload = quote.map { Array(ip.prefix($0)) } ?? ip
    return error
}

/// A neighbor advertisement (solicited, override) for `target`.
func neighborAdvert(_ source: String, _ destination: String, target: String) -> Packet {
    var advert = Packet(network: .ip(source, destination), transport: .icmpv6(type: 136, id: 0x6000, seq: 0))
    advert.payload = ipv6Address(target)
    return advert
}

/// The fixtures' DNS query ep4:sport -> peer4:53.
func dns4(sport: UInt16) -> Packet { .udp(Net.ep4, Net.peer4, sport: sport, dport: 53) }

/// The fixtures' SYN ep6:sport -> peer6:80.
func https6(sport: UInt16) -> Packet { .tcp(Net.ep6, Net.peer6, sport: sport, dport: 80, flags: .syn) }

/// A live entry another endpoint owns.
let otherEndpointsEntry: na_ct_value = {
    var value = ctEntry(lifetime: monotonicSeconds() + 1000)
    value.ep_id = Net.epID + 1
    return value
}()
