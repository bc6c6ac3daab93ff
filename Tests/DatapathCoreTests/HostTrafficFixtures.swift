import CNodeABI
import DatapathCore
import XCTest

/// The node's own traffic to its endpoints (identity host: kubelet probes) passes ingress policy unless na_config
/// says NA_CFG_LOCALHOST_POLICY (allow-localhost=policy).
let hostTrafficFixtures: [Fixture] = [
    Fixture(
        "by default the node reaches an endpoint that denies all ingress, and the endpoint can answer",
        setup: Setup(policy: [], ipcache: hostIPCache),
        [
            Step(.toEndpoint, .tcp(HostNet.node4, Net.ep4, sport: 41000, dport: 8080, flags: .syn), .pass) { h, _ in
                let key = ctKey(HostNet.node4, Net.ep4, sport: 41000, dport: 8080, proto: Proto.tcp, NA_DIR_INGRESS)
                let entry = try XCTUnwrap(h.conntrack.lookup(key))
                XCTAssertEqual(entry.src_identity, NA_ID_HOST.rawValue)
                XCTAssertEqual(entry.rule_id, 0, "no rule decided")
            },
            Step(.fromEndpoint, .tcp(Net.ep4, HostNet.node4, sport: 8080, dport: 41000, flags: [.syn, .ack]), .pass),
            // Re-checked after a policy change: still the node, still allowed.
            Step(
                .toEndpoint, .tcp(HostNet.node4, Net.ep4, sport: 41000, dport: 8080, flags: .ack), .pass,
                before: Step.Change { h in try h.changePolicy([]) }),
            // Egress to the node is the endpoint's own egress policy's business.
            Step(
                .fromEndpoint, .tcp(Net.ep4, HostNet.node4, sport: 41001, dport: 10250, flags: .syn),
                .drop(NA_DROP_POLICY)),
            // Only the node's addresses: other peers still meet the default deny.
            Step(.toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 41000, dport: 8080, flags: .syn), .drop(NA_DROP_POLICY)),
        ]),
    Fixture(
        "an explicit deny of the host does not hold against allow-localhost=always",
        setup: Setup(policy: [.ingress(NA_ID_HOST.rawValue, deny: true)], ipcache: hostIPCache),
        [Step(.toEndpoint, .tcp(HostNet.node4, Net.ep4, sport: 41000, dport: 8080, flags: .syn), .pass)]),
    Fixture(
        "with allow-localhost=policy the node's traffic meets ingress policy, new and established",
        setup: Setup(
            policy: [], config: configured(flags: UInt32(NA_CFG_EVENTS_DROPPED | NA_CFG_LOCALHOST_POLICY)),
            ipcache: hostIPCache),
        [
            Step(
                .toEndpoint, .tcp(HostNet.node4, Net.ep4, sport: 41000, dport: 8080, flags: .syn),
                .drop(NA_DROP_POLICY)
            ) { _, events in
                XCTAssertEqual(try XCTUnwrap(events.first).src_identity, NA_ID_HOST.rawValue)
            },
            Step(
                .toEndpoint, .tcp(HostNet.node4, Net.ep4, sport: 41000, dport: 8080, flags: .syn), .pass,
                before: Step.Change { h in try h.changePolicy([.ingress(NA_ID_HOST.rawValue, Proto.tcp, 8080)]) }),
            Step(
                .toEndpoint, .tcp(HostNet.node4, Net.ep4, sport: 41000, dport: 8080, flags: .ack),
                .drop(NA_DROP_POLICY), before: Step.Change { h in try h.changePolicy([]) }),
        ]),
]

enum HostNet {
    /// An address of the node itself: identity host in the ipcache.
    static let node4 = "10.0.0.1"
}

/// The fixtures' default ipcache plus the node's address.
let hostIPCache: [(cidr: String, identity: UInt32)] = [
    ("\(Net.peer4)/32", Net.peerIdentity), ("\(Net.peer6)/128", Net.peerIdentity),
    ("10.0.3.0/24", Net.subnetIdentity), ("\(HostNet.node4)/32", NA_ID_HOST.rawValue),
]
