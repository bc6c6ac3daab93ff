import DatapathCore

/// One verdict the datapath reported (a `struct na_flow_event`), decoded and enriched with what the agent knows
/// about both ends: identities and their labels, pods, and the policy rule that decided it.
public struct Flow: Sendable, Equatable {
    public enum Verdict: String, Sendable, CaseIterable {
        case forwarded = "FORWARDED"
        case dropped = "DROPPED"
    }

    /// From the endpoint's point of view, as `enum na_direction`.
    public enum Direction: String, Sendable {
        case ingress
        case egress
    }

    /// Wall-clock time of the verdict, nanoseconds since the Unix epoch.
    public var time: Int64
    public var verdict: Verdict
    /// `enum na_reason`: 0 when forwarded.
    public var reasonCode: UInt16
    /// The reason's name (`policy denied`).
    public var reason: String
    public var direction: Direction
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP).
    public var proto: UInt8
    public var source: Peer
    public var destination: Peer
    /// The endpoint whose program decided (0 when the interface had no endpoint).
    public var endpoint: UInt32
    /// The host-side interface the packet passed.
    public var ifindex: UInt32
    /// Bytes of the packet as the program saw it.
    public var length: UInt32
    /// The policy rule that allowed or denied the flow; 0 when no rule decided (not enforced, or default deny).
    public var ruleID: UInt32
    /// That rule's name (`web-tier/allow-frontend-to-backend egress[0]`), when it is still in force.
    public var rule: String?
    /// The HTTP request, for a request the L7 verdict decided.
    public var l7: L7?

    public init(
        time: Int64, verdict: Verdict, reasonCode: UInt16, reason: String, direction: Direction, proto: UInt8,
        source: Peer, destination: Peer, endpoint: UInt32, ifindex: UInt32, length: UInt32, ruleID: UInt32,
        rule: String?
    ) {
        self.time = time
        self.verdict = verdict
        self.reasonCode = reasonCode
        self.reason = reason
        self.direction = direction
        self.proto = proto
        self.source = source
        self.destination = destination
        self.endpoint = endpoint
        self.ifindex = ifindex
        self.length = length
        self.ruleID = ruleID
        self.rule = rule
    }

    /// The protocol's name as the API spells it (`TCP`), or its number for others.
    public var protocolName: String { IPProtocol.name(of: proto) }

    public var isICMP: Bool { IPProtocol.isICMP(proto) }

    /// The flow as the API returns it (see `GET /v1/flows`).
    public var json: JSON {
        var object: [String: JSON] = [
            "time": .string(RFC3339.format(nanoseconds: time)),
            "verdict": .string(verdict.rawValue),
            "reason": .string(reason),
            "reason-code": .int(Int64(reasonCode)),
            "direction": .string(direction.rawValue),
            "protocol": .string(protocolName),
            "ip-version": .int(source.ip.family == .ipv4 ? 4 : 6),
            "source": peerJSON(source),
            "destination": peerJSON(destination),
            "endpoint": .int(Int64(endpoint)),
            "interface-index": .int(Int64(ifindex)),
            "length": .int(Int64(length)),
            "rule-id": .int(Int64(ruleID)),
        ]
        if let rule { object["rule"] = .string(rule) }
        if let l7 { object["l7"] = l7.json }
        return .object(object)
    }

    private func peerJSON(_ peer: Peer) -> JSON {
        var object: [String: JSON] = [
            "ip": .string(peer.ip.description), "identity": .int(Int64(peer.identity)),
            "labels": .array(peer.labels.map { .string($0) }), "name": .string(peer.name),
        ]
        if isICMP {
            if peer.port != 0 { object["icmp-id"] = .int(Int64(peer.port)) }
        } else {
            object["port"] = .int(Int64(peer.port))
        }
        if let endpoint = peer.endpoint { object["endpoint"] = .int(Int64(endpoint)) }
        if let pod = peer.pod {
            object["pod"] = .string(pod)
            if let slash = pod.firstIndex(of: "/") {
                object["namespace"] = .string(String(pod[..<slash]))
                object["pod-name"] = .string(String(pod[pod.index(after: slash)...]))
            }
        }
        if let node = peer.node { object["node"] = .string(node) }
        return .object(object)
    }
}
