import CNodeABI

/// The endpoint's full-length policy keys in their hash beside the trie: the same verdicts as one trie holding
/// everything (exact identity and identity 0, longest prefix each, a deny from either wins).
let policyExactFixtures: [Fixture] = [
    Fixture(
        "full-length entries only in the trie (an agent without the hash) still decide",
        setup: Setup(policy: nil),
        [
            Step(
                .fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .pass,
                before: Step.Change { h in
                    try h.installPolicy(
                        endpoint: Net.epID,
                        [.egress(Net.peerIdentity, Proto.tcp, 80), .egress(0, Proto.tcp, 81, deny: true)],
                        exactInHash: false)
                }),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 81), .drop(NA_DROP_POLICY_DENY)),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 82), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "for one identity the longest prefix decides: an exact allow in the hash over a deny range in the trie",
        setup: Setup(policy: [
            .egress(Net.peerIdentity, Proto.tcp, 80), .egress(Net.peerIdentity, Proto.tcp, 0, portBits: 8, deny: true),
        ]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 81), .drop(NA_DROP_POLICY_DENY)),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 443), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "an exact deny for any peer wins over an allow of the peer",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp), .egress(0, Proto.tcp, 80, deny: true)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .drop(NA_DROP_POLICY_DENY)),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 81), .pass),
        ]),
    Fixture(
        "an exact allow in the hash with any-peer allows in the trie: each lookup finds its own",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80), .egress(0, Proto.udp)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, dport: 80), .pass),
            Step(.fromEndpoint, .udp(Net.ep4, Net.peer4, dport: 53), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.subnet4, dport: 80), .drop(NA_DROP_POLICY)),
        ]),
]
