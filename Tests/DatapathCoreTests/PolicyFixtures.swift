import CNodeABI

/// Policy decisions: the contract's two lookups (exact identity, then any), deny precedence, prefixes for
/// wildcard ports, port ranges and any protocol, identities from the ipcache, and enforcement per direction.
let policyFixtures: [Fixture] = [
    Fixture(
        "TCP SYN to an allowed peer and port passes",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80)]),
        [Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .pass)]),
    Fixture(
        "no entry matches: default deny",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 81), .drop(NA_DROP_POLICY)),
            Step(.fromEndpoint, .udp(Net.ep4, Net.peer4, dport: 80), .drop(NA_DROP_POLICY)),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.world4, dport: 80), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "an entry for the other direction does not allow",
        setup: Setup(policy: [.ingress(Net.peerIdentity, Proto.tcp, 80)]),
        [Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .drop(NA_DROP_POLICY))]),
    Fixture(
        "enforcing without any policy map installed: default deny",
        setup: Setup(policy: nil),
        [Step(.toEndpoint, .tcp(Net.peer4, Net.ep4, dport: 80), .drop(NA_DROP_POLICY))]),
    Fixture(
        "explicit deny entry",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80, deny: true)]),
        [Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .drop(NA_DROP_POLICY_DENY))]),
    Fixture(
        "deny for any peer wins over an allow for the exact identity",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80), .egress(0, Proto.tcp, 80, deny: true)]),
        [Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .drop(NA_DROP_POLICY_DENY))]),
    Fixture(
        "deny for the exact identity wins over an allow for any peer",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, deny: true), .egress(0, Proto.tcp, 80)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .drop(NA_DROP_POLICY_DENY)),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.world4, dport: 80), .pass),
        ]),
    Fixture(
        "wildcard port: protocol without port (prefix 48)",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 12345), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 1), .pass),
            Step(.fromEndpoint, .udp(Net.ep4, Net.peer4, dport: 12345), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "wildcard identity: entry for identity 0 allows any peer, world included",
        setup: Setup(policy: [.egress(0, Proto.tcp, 443)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.world4, dport: 443), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 443), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 444), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "port range 8080-8087 as one prefix of 13 port bits",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 8080, portBits: 13)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 8080), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 8087), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 8088), .drop(NA_DROP_POLICY)),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 8079), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "any protocol (prefix 40) allows every protocol and port of the peer",
        setup: Setup(policy: [.egress(Net.peerIdentity)]),
        [
            Step(.fromEndpoint, .udp(Net.ep4, Net.peer4, dport: 53), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 22), .pass),
            Step(.fromEndpoint, .sctp(Net.ep4, Net.peer4, dport: 9), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.subnet4, dport: 22), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "longer allow inside a shorter deny of the same lookup: the longest prefix decides",
        setup: Setup(policy: [
            .egress(Net.peerIdentity, Proto.tcp, deny: true), .egress(Net.peerIdentity, Proto.tcp, 80),
        ]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 81), .drop(NA_DROP_POLICY_DENY)),
        ]),
    Fixture(
        "SCTP ports go through policy",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.sctp, 3868)]),
        [
            Step(.fromEndpoint, .sctp(Net.ep4, Net.peer4, dport: 3868), .pass),
            Step(.fromEndpoint, .sctp(Net.ep4, Net.peer4, dport: 3869), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "ipcache longest prefix: an address inside a /24 gets the subnet's identity",
        setup: Setup(policy: [.egress(Net.subnetIdentity, Proto.tcp, 5432)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.subnet4, dport: 5432), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 5432), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "a source nobody claims is WORLD (identity 2) on ingress",
        setup: Setup(policy: [.ingress(NA_ID_WORLD.rawValue, Proto.tcp, 80)]),
        [
            Step(.toEndpoint, .tcp(Net.world4, Net.ep4, dport: 80), .pass),
            Step(.toEndpoint, .tcp(Net.world6, Net.ep6, dport: 80), .pass),
            Step(.toEndpoint, .tcp(Net.peer4, Net.ep4, dport: 80), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "ingress allow for the peer identity over IPv6",
        setup: Setup(policy: [.ingress(Net.peerIdentity, Proto.tcp, 8443)]),
        [
            Step(.toEndpoint, .tcp(Net.peer6, Net.ep6, dport: 8443), .pass),
            Step(.toEndpoint, .tcp(Net.peer6, Net.ep6, dport: 8444), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "a direction the endpoint does not enforce passes without rules",
        setup: Setup(endpoint: Setup.Endpoint(enforceIngress: true, enforceEgress: false), policy: []),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.world4, dport: 80), .pass),
            Step(.fromEndpoint, .udp(Net.ep6, Net.world6, dport: 53), .pass),
            Step(.toEndpoint, .tcp(Net.world4, Net.ep4, dport: 80), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "an endpoint without policy enforcement needs no policy map",
        setup: Setup(endpoint: Setup.Endpoint(enforceIngress: false, enforceEgress: false), policy: nil),
        [
            Step(.toEndpoint, .tcp(Net.world4, Net.ep4, dport: 22), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.world4, dport: 22), .pass),
        ]),
]
