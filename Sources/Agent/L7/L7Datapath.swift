import DatapathCore
import Policy
import Synchronization

/// Writes endpoints' HTTP rules into the `na_l7_*` maps the sk_skb verdict (`bpf/l7.bpf.c`) reads.
///
/// Each port with HTTP rules gets a ruleset under a fresh id: its DFA states in a range of `na_l7_dfa` nobody
/// uses, its rules and peers, and only then the port's entries in `na_l7_ports` flip to it, so a request meets the
/// old ruleset or the new one, never a mix. The old ruleset's entries and states are released afterwards.
public final class L7Datapath: Sendable {
    /// What one endpoint has in the maps.
    struct Installed {
        var keys: [na_l7_port_key] = []
        /// Ruleset id -> its DFA range base.
        var rulesets: [UInt32: Int] = [:]
    }

    struct State {
        var endpoints: [UInt32: Installed] = [:]
        var ranges: L7StateRanges
        var nextRuleset: UInt32 = 1
    }

    let ports: TypedMap<na_l7_port_key, na_l7_port_value>
    let peers: TypedMap<na_l7_peer_key, na_l7_peer_value>
    let rules: TypedMap<na_l7_rule_key, na_l7_rule>
    let dfa: TypedMap<UInt32, na_l7_dfa_state>
    private let state: Mutex<State>

    /// Over the maps of a loaded `l7` object. What the maps hold is adopted: endpoints, rulesets and DFA ranges are
    /// learned from `na_l7_ports`, and rules or peers of rulesets no port names (an interrupted update) are deleted.
    public init(object: BPFObject) throws(AgentError) {
        let maps = try datapathCall("opening the L7 maps") {
            guard let ports = object.map(named: "na_l7_ports"), let peers = object.map(named: "na_l7_peers"),
                let rules = object.map(named: "na_l7_rules"), let dfa = object.map(named: "na_l7_dfa")
            else { throw AgentError.datapath("object \(object.name) has no L7 maps") }
            return (
                ports: try TypedMap<na_l7_port_key, na_l7_port_value>(ports),
                peers: try TypedMap<na_l7_peer_key, na_l7_peer_value>(peers),
                rules: try TypedMap<na_l7_rule_key, na_l7_rule>(rules),
                dfa: try TypedMap<UInt32, na_l7_dfa_state>(dfa), capacity: dfa.info.maxEntries
            )
        }
        ports = maps.ports
        peers = maps.peers
        rules = maps.rules
        dfa = maps.dfa
        var learned = State(ranges: L7StateRanges(capacity: maps.capacity))
        try datapathCall("reading the L7 maps") {
            for (key, value) in try maps.ports.entries() {
                learned.endpoints[value.ep_id, default: Installed()].keys.append(key)
                learned.endpoints[value.ep_id, default: Installed()].rulesets[value.ruleset] = Int(value.dfa_base)
                learned.ranges.claim(base: Int(value.dfa_base), count: Int(value.dfa_count))
                learned.nextRuleset = max(learned.nextRuleset, value.ruleset &+ 1)
            }
            let live = Set(learned.endpoints.values.flatMap { $0.rulesets.keys })
            for (key, _) in try maps.peers.entries() where !live.contains(key.ruleset) {
                _ = try maps.peers.delete(key)
            }
            for (key, _) in try maps.rules.entries() where !live.contains(key.ruleset) {
                _ = try maps.rules.delete(key)
            }
        }
        state = Mutex(learned)
    }

    /// Makes `ports` the HTTP rules of the endpoint's `addresses`, replacing what it had; an empty list removes them.
    /// Nothing changes when the rules do not fit (`na_l7_dfa` full: a capacity error) or are invalid.
    public func apply(endpoint epID: UInt32, identity: UInt32, addresses: [IPAddress], ports policies: [HTTPPortPolicy])
        throws(AgentError)
    {
        try state.withLock { (state) throws(AgentError) in
            var fresh = Installed()
            var values: [(key: na_l7_port_key, value: na_l7_port_value)] = []
            do throws(AgentError) {
                for policy in policies {
                    let count = L7PortEntries.stateCount(policy)
                    guard count <= Int(UInt16.max), let base = state.ranges.allocate(count) else {
                        throw .capacity(
                            "na_l7_dfa has \(state.ranges.free) free states, port \(policy.port) needs \(count)")
                    }
                    let ruleset = state.nextRuleset
                    state.nextRuleset = state.nextRuleset == UInt32.max ? 1 : state.nextRuleset + 1
                    fresh.rulesets[ruleset] = base
                    let entries = try L7PortEntries(policy, base: UInt16(base))
                    try write(entries, ruleset: ruleset, base: base)
                    var value = na_l7_port_value()
                    value.ruleset = ruleset
                    value.ep_id = epID
                    value.ep_identity = identity
                    value.dfa_base = UInt16(base)
                    value.dfa_count = UInt16(count)
                    for address in addresses {
                        values.append((na_l7_port_key(address: address, port: policy.port), value))
                    }
                }
                try datapathCall("flipping the L7 ports of endpoint \(epID)") {
                    for (key, value) in values { try ports.update(key, value) }
                }
            } catch {
                // The new rulesets never became visible: release them, the old ones stay in force.
                try? release(fresh, keeping: [], state: &state)
                throw error
            }
            fresh.keys = values.map(\.key)
            let old = state.endpoints[epID] ?? Installed()
            state.endpoints[epID] = fresh.keys.isEmpty ? nil : fresh
            try release(old, keeping: Set(fresh.keys.map(L7PortKey.init)), state: &state)
        }
    }

    /// Removes the endpoint's HTTP rules: its ports stop being enrolled and their open connections pass unchecked.
    public func remove(endpoint epID: UInt32) throws(AgentError) {
        try state.withLock { (state) throws(AgentError) in
            guard let old = state.endpoints.removeValue(forKey: epID) else { return }
            try release(old, keeping: [], state: &state)
        }
    }

    private func write(_ entries: L7PortEntries, ruleset: UInt32, base: Int) throws(AgentError) {
        try datapathCall("writing L7 ruleset \(ruleset)") {
            for (offset, entry) in entries.states.enumerated() { try dfa.update(UInt32(base + offset), entry) }
            for (index, rule) in entries.rules.enumerated() {
                try rules.update(na_l7_rule_key(ruleset: ruleset, index: UInt32(index)), rule)
            }
            for (identity, value) in entries.peers {
                try peers.update(na_l7_peer_key(ruleset: ruleset, identity: identity), value)
            }
        }
    }

    /// Deletes what `installed` put in the maps except port keys in `keeping` (now pointing at a new ruleset).
    private func release(_ installed: Installed, keeping: Set<L7PortKey>, state: inout State) throws(AgentError) {
        try datapathCall("releasing L7 rulesets") {
            for key in installed.keys where !keeping.contains(L7PortKey(key)) { _ = try ports.delete(key) }
            guard !installed.rulesets.isEmpty else { return }
            for (key, _) in try peers.entries() where installed.rulesets[key.ruleset] != nil {
                _ = try peers.delete(key)
            }
            for (ruleset, base) in installed.rulesets {
                for index in 0..<UInt32(NA_L7_MAX_RULES) {
                    _ = try rules.delete(na_l7_rule_key(ruleset: ruleset, index: index))
                }
                state.ranges.free(base: base)
            }
        }
    }
}

/// A port key as a set element (the imported C struct is not Hashable).
struct L7PortKey: Hashable {
    let bytes: [UInt8]
    init(_ key: na_l7_port_key) { bytes = bytesOf(key) }
}
