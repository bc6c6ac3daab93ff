/// What the kernel enforces for HTTP on one port of an endpoint: the rules written for it and, per peer identity,
/// which of them apply. The policy compiler produces it from `toPorts[].rules.http`; the L7 datapath writes it into
/// the `na_l7_*` maps (`nodeagent_abi.h`), where the sk_skb verdict decides every request against it.
public struct HTTPPortPolicy: Hashable, Sendable {
    /// Which requests a peer may send on the port.
    public enum Access: Hashable, Sendable {
        /// An allow rule without HTTP rules covers the peer on this port: every request passes.
        case unrestricted
        /// Bit i set: `rules[i]` applies to the peer's requests. A request passes when one of them matches.
        case rules(UInt64)
    }

    /// Most rules one port may carry: the width of `Access.rules`' mask (`NA_L7_MAX_RULES`).
    public static let maxRules = 64

    public var port: UInt16
    /// At most `maxRules`, in the order their bits are numbered.
    public var rules: [HTTPRuleProgram]
    /// Keyed by peer identity; identity 0 stands for any peer. A request's rules are the union of its peer's entry
    /// and identity 0's; `unrestricted` in either wins. A peer in neither is refused.
    public var peers: [UInt32: Access]

    public init(port: UInt16, rules: [HTTPRuleProgram], peers: [UInt32: Access]) {
        self.port = port
        self.rules = rules
        self.peers = peers
    }
}

/// One HTTP rule, compiled: each regex as the automaton the kernel walks (nil: the field is not constrained).
public struct HTTPRuleProgram: Hashable, Sendable {
    /// The regexes the automata were compiled from, for people: policy views and traces.
    public struct Sources: Hashable, Sendable {
        public var method: String?
        public var path: String?
        public var host: String?

        public init(method: String? = nil, path: String? = nil, host: String? = nil) {
            self.method = method
            self.path = path
            self.host = host
        }
    }

    /// The number of the policy rule the HTTP rule came from, reported in flows.
    public var ruleID: UInt32
    public var method: ByteDFA?
    public var path: ByteDFA?
    public var host: ByteDFA?
    public var headers: [HTTPHeaderRequirement]
    public var sources: Sources

    public init(
        ruleID: UInt32, method: ByteDFA? = nil, path: ByteDFA? = nil, host: ByteDFA? = nil,
        headers: [HTTPHeaderRequirement] = [], sources: Sources = Sources()
    ) {
        self.ruleID = ruleID
        self.method = method
        self.path = path
        self.host = host
        self.headers = headers
        self.sources = sources
    }
}

/// A header the request must carry (`headers`), or carry with exactly this value (`headerMatches`).
public struct HTTPHeaderRequirement: Hashable, Sendable {
    /// Lower case: header names compare case-insensitively.
    public var name: String
    /// nil: presence is enough.
    public var value: String?

    public init(name: String, value: String? = nil) {
        self.name = name.lowercased()
        self.value = value
    }
}

/// A deterministic automaton over bytes, as the kernel walks it (`struct na_l7_dfa_state`): state 0 is the dead
/// state, which never accepts and only leads to itself; a walk starts in state 1; a value matches when the walk over
/// all of its bytes ends in an accepting state (the whole value must match).
public struct ByteDFA: Hashable, Sendable {
    public struct State: Hashable, Sendable {
        /// 256 entries: the state after each byte value.
        public var next: [UInt16]
        public var accepting: Bool

        public init(next: [UInt16], accepting: Bool) {
            precondition(next.count == 256, "a DFA state has one transition per byte value")
            self.next = next
            self.accepting = accepting
        }
    }

    /// `states[0]` is the dead state and `states[1]` the start.
    public var states: [State]

    public init(states: [State]) {
        precondition(states.count >= 2 && states[0].next.allSatisfy { $0 == 0 } && !states[0].accepting)
        self.states = states
    }

    /// The automaton that accepts exactly `literal`'s bytes.
    public init(literal: some Collection<UInt8>) {
        let dead = State(next: Array(repeating: 0, count: 256), accepting: false)
        var states = [dead]
        for (offset, byte) in literal.enumerated() {
            var next = Array(repeating: UInt16(0), count: 256)
            next[Int(byte)] = UInt16(offset + 2)
            states.append(State(next: next, accepting: false))
        }
        states.append(dead)
        states[states.count - 1].accepting = true
        self.init(states: states)
    }

    /// The walk the kernel makes, for tests and traces.
    public func matches(_ bytes: some Sequence<UInt8>) -> Bool {
        var state = 1
        for byte in bytes {
            state = Int(states[state].next[Int(byte)])
            if state == 0 { return false }
        }
        return states[state].accepting
    }
}
