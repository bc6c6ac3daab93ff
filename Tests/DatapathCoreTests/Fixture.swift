import CNodeABI
import DatapathCore

/// One table-driven datapath case: map setup, then packets run through a program in order, each with the
/// verdict, the metrics counter and the flow events it must produce.
struct Fixture: Sendable {
    var description: String
    var setup = Setup()
    var steps: [Step]

    init(_ description: String, setup: Setup = Setup(), _ steps: [Step]) {
        self.description = description
        self.setup = setup
        self.steps = steps
    }
}

enum Program: String, Sendable {
    /// tc ingress of the host-side veth: traffic the endpoint sends (egress direction).
    case fromEndpoint = "from_endpoint"
    /// tc egress of the host-side veth: traffic to the endpoint (ingress direction).
    case toEndpoint = "to_endpoint"
    /// tc ingress of an external interface: traffic from outside the node (ingress direction).
    case fromNetdev = "from_netdev"
    /// tc egress of an external interface: traffic leaving the node (egress direction).
    case toNetdev = "to_netdev"

    var direction: UInt32 {
        self == .fromEndpoint || self == .toNetdev ? NA_DIR_EGRESS.rawValue : NA_DIR_INGRESS.rawValue
    }
}

enum Verdict: Sendable, Equatable, CustomStringConvertible {
    case pass
    case drop(na_reason)

    static let TC_ACT_OK: UInt32 = 0
    static let TC_ACT_SHOT: UInt32 = 2
    static let TC_ACT_REDIRECT: UInt32 = 7

    var isPass: Bool {
        if case .pass = self { return true }
        return false
    }
    var retval: UInt32 { isPass ? Self.TC_ACT_OK : Self.TC_ACT_SHOT }
    var reason: UInt32 {
        if case .drop(let reason) = self { return reason.rawValue }
        return NA_REASON_FORWARDED.rawValue
    }
    var description: String { isPass ? "pass" : "drop(\(reason))" }

    static func == (a: Verdict, b: Verdict) -> Bool { a.retval == b.retval && a.reason == b.reason }
}

struct Step: Sendable {
    var program: Program
    var packet: [UInt8]
    var expect: Verdict
    /// Flow events the packet must produce; nil: one for a drop, none for a pass (the default config).
    var events: Int?
    /// Map changes made before the packet runs (what the agent does between two packets, e.g. a policy change).
    var before: Change?
    /// Further assertions after the packet ran, on the maps and the flow events it produced.
    var check: Check?

    /// A struct, not a bare closure, so that a trailing closure still means `check`.
    struct Change: Sendable {
        let apply: @Sendable (DatapathHarness) throws -> Void
        init(_ apply: @escaping @Sendable (DatapathHarness) throws -> Void) { self.apply = apply }
    }

    typealias Check = @Sendable (DatapathHarness, [na_flow_event]) throws -> Void

    init(
        _ program: Program, _ packet: [UInt8], _ expect: Verdict, events: Int? = nil, before: Change? = nil,
        check: Check? = nil
    ) {
        self.program = program
        self.packet = packet
        self.expect = expect
        self.events = events
        self.before = before
        self.check = check
    }

    init(
        _ program: Program, _ packet: Packet, _ expect: Verdict, events: Int? = nil, before: Change? = nil,
        check: Check? = nil
    ) {
        self.init(program, packet.bytes, expect, events: events, before: before, check: check)
    }
}

/// The endpoint the fixtures protect and the peers it talks to.
enum Net {
    static let epID: UInt32 = 12
    static let epIdentity: UInt32 = 256
    static let ep4 = "10.0.1.5"
    static let ep6 = "fd00::5"
    /// A pod with identity 300 (ipcache /32 and /128).
    static let peer4 = "10.0.2.7"
    static let peer6 = "fd00::7"
    static let peerIdentity: UInt32 = 300
    /// A subnet with identity 400 (ipcache /24).
    static let subnet4 = "10.0.3.9"
    static let subnetIdentity: UInt32 = 400
    /// Nobody claims it: WORLD.
    static let world4 = "1.1.1.1"
    static let world6 = "2001:db8::1"
}

struct Setup: Sendable {
    struct Endpoint: Sendable {
        var ifindex = DatapathHarness.testRunIfindex
        var enforceIngress = true
        var enforceEgress = true
        var ipv4: String? = Net.ep4
        var ipv6: String? = Net.ep6
    }

    /// nil: the interface has no endpoint entry.
    var endpoint: Endpoint? = Endpoint()
    var ipcache: [(cidr: String, identity: UInt32)] = [
        ("\(Net.peer4)/32", Net.peerIdentity), ("\(Net.peer6)/128", Net.peerIdentity),
        ("10.0.3.0/24", Net.subnetIdentity),
    ]
    /// nil: no policy map installed for the endpoint.
    var policy: [PolicyEntry]? = []
    var config = na_config()
    /// Conntrack entries present before the first packet.
    var conntrack: [(key: na_ct_key, value: na_ct_value)] = []

    init(
        endpoint: Endpoint? = Endpoint(), policy: [PolicyEntry]? = [], config: na_config = na_config(),
        conntrack: [(key: na_ct_key, value: na_ct_value)] = [], ipcache: [(cidr: String, identity: UInt32)]? = nil
    ) {
        if let ipcache { self.ipcache = ipcache }
        self.endpoint = endpoint
        self.policy = policy
        self.config = config
        self.conntrack = conntrack
    }

    /// Writes the setup into the (reset) maps.
    func apply(to h: DatapathHarness) throws {
        if let endpoint {
            var info = na_endpoint_info()
            info.ep_id = Net.epID
            info.identity = Net.epIdentity
            info.policy_revision = 1
            if endpoint.enforceIngress { info.flags |= UInt32(NA_EP_ENFORCE_INGRESS) }
            if endpoint.enforceEgress { info.flags |= UInt32(NA_EP_ENFORCE_EGRESS) }
            if let v4 = endpoint.ipv4 {
                info.flags |= UInt32(NA_EP_HAS_IPV4)
                setTupleBytes(&info.ipv4, ipv4Address(v4))
            }
            if let v6 = endpoint.ipv6 {
                info.flags |= UInt32(NA_EP_HAS_IPV6)
                setTupleBytes(&info.ipv6, ipv6Address(v6))
            }
            try h.writeEndpoint(endpoint.ifindex, info)
        }
        for entry in ipcache { try h.addIPCache(entry.cidr, identity: entry.identity) }
        if let policy { try h.installPolicy(endpoint: Net.epID, policy) }
        try h.config.update(0, config)
        for entry in conntrack { try h.conntrack.update(entry.key, entry.value) }
    }
}

/// A policy trie entry: identity 0 is any peer, a nil protocol any protocol (prefix 40), a nil port any port
/// (prefix 48), `portBits` < 16 a range of ports sharing the top bits (prefix 48 + portBits).
struct PolicyEntry: Sendable {
    var identity: UInt32
    var direction: UInt32
    var proto: UInt8?
    var port: UInt16?
    var portBits = 16
    var deny = false
    var ruleID: UInt32 = 7

    static func egress(
        _ identity: UInt32, _ proto: UInt8? = nil, _ port: UInt16? = nil, portBits: Int = 16, deny: Bool = false
    ) -> PolicyEntry {
        PolicyEntry(
            identity: identity, direction: NA_DIR_EGRESS.rawValue, proto: proto, port: port, portBits: portBits,
            deny: deny)
    }

    static func ingress(
        _ identity: UInt32, _ proto: UInt8? = nil, _ port: UInt16? = nil, portBits: Int = 16, deny: Bool = false
    ) -> PolicyEntry {
        PolicyEntry(
            identity: identity, direction: NA_DIR_INGRESS.rawValue, proto: proto, port: port, portBits: portBits,
            deny: deny)
    }

    var key: na_policy_key {
        var key = na_policy_key()
        key.identity = identity.bigEndian
        key.direction = UInt8(direction)
        key.prefixlen = UInt32(NA_POLICY_PREFIX_FULL)
        if let proto {
            key.protocol = proto
            key.prefixlen = UInt32(NA_POLICY_PREFIX_PROTO)
            if let port {
                key.dport = port.bigEndian
                key.prefixlen += UInt32(portBits)
            }
        }
        return key
    }

    var value: na_policy_value {
        na_policy_value(rule_id: ruleID, flags: deny ? UInt32(NA_POLICY_DENY) : 0)
    }
}

enum Proto {
    static let icmp: UInt8 = 1
    static let tcp: UInt8 = 6
    static let udp: UInt8 = 17
    static let icmpv6: UInt8 = 58
    static let sctp: UInt8 = 132
}
