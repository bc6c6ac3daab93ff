import CNodeABI
import DatapathCore
import XCTest

/// Policy changes reach established flows: an entry remembers the endpoint's policy generation it was allowed
/// under, and a packet of a flow whose endpoint's generation moved is judged again by the direction that opened it.
let revocationFixtures: [Fixture] = [
    Fixture(
        "a revoked egress allow drops the established flow in both directions; the entry is left as it was",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80, flags: .syn), .pass) { h, _ in
                XCTAssertEqual(try XCTUnwrap(h.conntrack.lookup(egressKey)).policy_revision, 1)
            },
            Step(.toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 80, dport: 40000, flags: [.syn, .ack]), .pass),
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80, flags: .ack), .pass),
            Step(
                .fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80, flags: .ack), .drop(NA_DROP_POLICY),
                before: Step.Change { h in try h.changePolicy([]) }
            ) { h, events in
                let e = try XCTUnwrap(events.first)
                XCTAssertEqual(e.dst_identity, Net.peerIdentity, "the event names the peer")
                XCTAssertEqual(e.rule_id, 0)
                let entry = try XCTUnwrap(h.conntrack.lookup(egressKey))
                XCTAssertEqual(entry.policy_revision, 1, "a denied flow keeps its old generation")
                XCTAssertEqual(entry.packets, 3, "a dropped packet is not counted on the entry")
            },
            // The reply is judged by its request's direction: egress to peer:80, which nothing allows now.
            Step(
                .toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 80, dport: 40000, flags: .ack), .drop(NA_DROP_POLICY)),
            // Without ingress enforcement the reply would be a new ingress flow if the entry had been deleted.
            Step(
                .toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 80, dport: 40000, flags: .ack), .drop(NA_DROP_POLICY),
                before: Step.Change { h in try h.changePolicy([], enforceIngress: false) }),
            // Allowed again: the flow resumes and its entry moves to the current generation.
            Step(
                .fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80, flags: .ack), .pass,
                before: Step.Change { h in try h.changePolicy([.egress(Net.peerIdentity, Proto.tcp, 80)]) }
            ) { h, _ in
                let entry = try XCTUnwrap(h.conntrack.lookup(egressKey))
                XCTAssertEqual(entry.policy_revision, 4)
                XCTAssertEqual(entry.packets, 4)
            },
        ]),
    Fixture(
        "an unrelated policy change re-checks the flow once, which passes and moves the entry's generation",
        setup: Setup(policy: [.egress(Net.peerIdentity, Proto.tcp, 80)]),
        [
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80, flags: .syn), .pass),
            Step(
                .toEndpoint, .tcp(Net.peer4, Net.ep4, sport: 80, dport: 40000, flags: [.syn, .ack]), .pass,
                before: Step.Change { h in
                    try h.changePolicy([
                        .egress(Net.peerIdentity, Proto.tcp, 80), .egress(Net.subnetIdentity, Proto.udp, 53),
                    ])
                }
            ) { h, _ in
                let entry = try XCTUnwrap(h.conntrack.lookup(egressKey))
                XCTAssertEqual(entry.policy_revision, 2, "a reply re-checked and allowed moves the entry")
                XCTAssertEqual(entry.rule_id, 7)
                XCTAssertEqual(entry.packets, 2)
            },
            Step(.fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80, flags: .ack), .pass),
        ]),
    Fixture(
        "a deny added on ingress drops the established ingress flow and its replies with the deny reason",
        setup: Setup(policy: [.ingress(Net.peerIdentity, Proto.tcp, 8080)]),
        [
            Step(.toEndpoint, .tcp(Net.peer6, Net.ep6, sport: 5555, dport: 8080, flags: .syn), .pass),
            Step(.fromEndpoint, .tcp(Net.ep6, Net.peer6, sport: 8080, dport: 5555, flags: [.syn, .ack]), .pass),
            Step(
                .fromEndpoint, .tcp(Net.ep6, Net.peer6, sport: 8080, dport: 5555, flags: .ack),
                .drop(NA_DROP_POLICY_DENY),
                before: Step.Change { h in
                    var deny = PolicyEntry.ingress(Net.peerIdentity, Proto.tcp, 8080, deny: true)
                    deny.ruleID = 9
                    try h.changePolicy([deny])
                }
            ) { _, events in
                let e = try XCTUnwrap(events.first)
                XCTAssertEqual(e.rule_id, 9, "the event names the deny rule")
                XCTAssertEqual(UInt32(e.direction), NA_DIR_EGRESS.rawValue, "the reply's own direction")
            },
            Step(
                .toEndpoint, .tcp(Net.peer6, Net.ep6, sport: 5555, dport: 8080, flags: .ack),
                .drop(NA_DROP_POLICY_DENY)),
        ]),
    Fixture(
        "a flow allowed without enforcement is judged once enforcement starts",
        setup: Setup(endpoint: Setup.Endpoint(enforceIngress: false, enforceEgress: false)),
        [
            Step(.fromEndpoint, .udp(Net.ep4, Net.peer4, sport: 40000, dport: 53), .pass),
            Step(.toEndpoint, .udp(Net.peer4, Net.ep4, sport: 53, dport: 40000), .pass),
            Step(
                .toEndpoint, .udp(Net.peer4, Net.ep4, sport: 53, dport: 40000), .drop(NA_DROP_POLICY),
                before: Step.Change { h in try h.changePolicy([], enforceEgress: true) }),
        ]),
    Fixture(
        "an entry of the current generation passes without a policy lookup (no policy map at all)",
        setup: Setup(policy: nil),
        [
            Step(
                .fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80, flags: .ack), .pass,
                before: Step.Change { h in
                    var entry = ctEntry(lifetime: monotonicSeconds() + 1000)
                    entry.policy_revision = 1
                    try h.conntrack.update(egressKey, entry)
                }),
            Step(
                .fromEndpoint, .tcp(Net.ep4, Net.peer4, sport: 40000, dport: 80, flags: .ack), .drop(NA_DROP_POLICY),
                before: Step.Change { h in
                    var entry = ctEntry(lifetime: monotonicSeconds() + 1000)
                    entry.policy_revision = 0
                    try h.conntrack.update(egressKey, entry)
                }),
        ]),
]
