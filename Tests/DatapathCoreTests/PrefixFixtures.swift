import CNodeABI

/// CIDR identities in the ipcache LPM trie as the CIDR policy plugin writes them: overlapping prefixes resolve to
/// the longest, /0 catches everything else, /32 and /128 single hosts, and an `except` range is a more specific
/// prefix with an identity of its own that the policy does not allow.
private enum Prefix {
    static let all: UInt32 = (1 << 24) + 1  // 0.0.0.0/0
    static let wide: UInt32 = (1 << 24) + 2  // 203.0.0.0/8
    static let allowed: UInt32 = (1 << 24) + 3  // 203.0.113.0/24
    static let carved: UInt32 = (1 << 24) + 4  // 203.0.113.128/25, the except range
    static let host: UInt32 = (1 << 24) + 5  // 203.0.113.200/32, inside the carved range
    static let v6Net: UInt32 = (1 << 24) + 6  // 2001:db8::/32
    static let v6Except: UInt32 = (1 << 24) + 7  // 2001:db8:1::/48
    static let v6All: UInt32 = (1 << 24) + 8  // ::/0

    static let ipcache: [(cidr: String, identity: UInt32)] = [
        ("0.0.0.0/0", all), ("203.0.0.0/8", wide), ("203.0.113.0/24", allowed), ("203.0.113.128/25", carved),
        ("203.0.113.200/32", host), ("2001:db8::/32", v6Net), ("2001:db8:1::/48", v6Except), ("::/0", v6All),
        ("\(Net.peer4)/32", Net.peerIdentity),
    ]
}

let prefixFixtures: [Fixture] = [
    Fixture(
        "overlapping prefixes: the longest match decides the identity",
        setup: Setup(policy: [.egress(Prefix.allowed, Proto.tcp, 443)], ipcache: Prefix.ipcache),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, "203.0.113.10", dport: 443), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, "203.0.113.127", dport: 443), .pass),
            // In the /8 but not the /24: the /8's identity, which no entry allows.
            Step(.fromEndpoint, .tcp(Net.ep4, "203.0.114.10", dport: 443), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "except range: a more specific prefix with its own identity is not allowed",
        setup: Setup(policy: [.egress(Prefix.allowed, Proto.tcp, 443)], ipcache: Prefix.ipcache),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, "203.0.113.128", dport: 443), .drop(NA_DROP_POLICY)),
            Step(.fromEndpoint, .tcp(Net.ep4, "203.0.113.255", dport: 443), .drop(NA_DROP_POLICY)),
            Step(.fromEndpoint, .tcp(Net.ep4, "203.0.113.100", dport: 443), .pass),
        ]),
    Fixture(
        "a /32 inside the except range wins over it",
        setup: Setup(policy: [.egress(Prefix.host, Proto.tcp, 443)], ipcache: Prefix.ipcache),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, "203.0.113.200", dport: 443), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, "203.0.113.201", dport: 443), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "/0 gives every address outside the other prefixes its identity",
        setup: Setup(policy: [.egress(Prefix.all, Proto.udp, 53)], ipcache: Prefix.ipcache),
        [
            Step(.fromEndpoint, .udp(Net.ep4, "8.8.8.8", dport: 53), .pass),
            Step(.fromEndpoint, .udp(Net.ep4, "203.0.113.10", dport: 53), .drop(NA_DROP_POLICY)),
            // Pods keep their /32 identity under a /0.
            Step(.fromEndpoint, .udp(Net.ep4, Net.peer4, dport: 53), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "without a /0 an unknown address is world",
        setup: Setup(policy: [.egress(NA_ID_WORLD.rawValue, Proto.tcp, 80)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.world4, dport: 80), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "IPv6 prefixes and an IPv6 except range",
        setup: Setup(policy: [.egress(Prefix.v6Net, Proto.tcp, 443)], ipcache: Prefix.ipcache),
        [
            Step(.fromEndpoint, .tcp(Net.ep6, "2001:db8:2::1", dport: 443), .pass),
            Step(.fromEndpoint, .tcp(Net.ep6, "2001:db8:1::1", dport: 443), .drop(NA_DROP_POLICY)),
            Step(.fromEndpoint, .tcp(Net.ep6, "2001:db9::1", dport: 443), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "families never match each other's prefixes",
        setup: Setup(
            policy: [.egress(Prefix.v6All, Proto.tcp, 443)], ipcache: [("::/0", Prefix.v6All)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep6, Net.world6, dport: 443), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.world4, dport: 443), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "ingress from a CIDR identity, reply through conntrack",
        setup: Setup(policy: [.ingress(Prefix.allowed, Proto.tcp, 8080)], ipcache: Prefix.ipcache),
        [
            Step(.toEndpoint, .tcp("203.0.113.10", Net.ep4, dport: 8080), .pass),
            // Egress is enforced with no egress entry: only conntrack lets the reply out.
            Step(.fromEndpoint, .tcp(Net.ep4, "203.0.113.10", sport: 8080, dport: 40000, flags: [.syn, .ack]), .pass),
            Step(
                .fromEndpoint, .tcp(Net.ep4, "203.0.113.10", sport: 8080, dport: 40001, flags: [.syn, .ack]),
                .drop(NA_DROP_POLICY)),
            Step(.toEndpoint, .tcp("203.0.113.130", Net.ep4, dport: 8080), .drop(NA_DROP_POLICY)),
        ]),
]
