import DatapathCore
import Policy

/// The `na_l7_*` map entries of one port's HTTP rules (layouts in `nodeagent_abi.h`), built from its compiled form.
struct L7PortEntries {
    /// States in the order they go to `na_l7_dfa[base...]`.
    var states: [na_l7_dfa_state] = []
    var rules: [na_l7_rule] = []
    var peers: [(identity: UInt32, value: na_l7_peer_value)] = []

    /// `base` is where the states will be written: each DFA's state k (k >= 1) becomes `base + offset + k - 1`,
    /// so its start state (1) names it and its dead state (0) stays the shared state 0.
    init(_ policy: HTTPPortPolicy, base: UInt16) throws(AgentError) {
        guard policy.rules.count <= HTTPPortPolicy.maxRules else {
            throw .invalidField("rules", "port \(policy.port) has \(policy.rules.count) HTTP rules, at most 64 fit")
        }
        for program in policy.rules {
            var rule = na_l7_rule()
            rule.rule_id = program.ruleID
            rule.method_dfa = append(program.method, base: base)
            rule.path_dfa = append(program.path, base: base)
            rule.host_dfa = append(program.host, base: base)
            guard program.headers.count <= Int(NA_L7_MAX_HEADER_REQS) else {
                throw .invalidField("headers", "rule \(program.ruleID) requires more than 4 headers")
            }
            rule.header_count = UInt8(program.headers.count)
            var requirements = [na_l7_header_req](repeating: na_l7_header_req(), count: Int(NA_L7_MAX_HEADER_REQS))
            for (index, header) in program.headers.enumerated() {
                requirements[index] = try Self.requirement(header)
            }
            withUnsafeMutableBytes(of: &rule.headers) { raw in
                requirements.withUnsafeBytes { raw.copyMemory(from: $0) }
            }
            rules.append(rule)
        }
        for (identity, access) in policy.peers.sorted(by: { $0.key < $1.key }) {
            var value = na_l7_peer_value()
            switch access {
            case .unrestricted: value.flags = UInt32(NA_L7_PEER_UNRESTRICTED)
            case .rules(let mask): value.rules = mask
            }
            peers.append((identity, value))
        }
    }

    /// States a port's DFAs need: all but each DFA's dead state.
    static func stateCount(_ policy: HTTPPortPolicy) -> Int {
        policy.rules.reduce(0) { total, rule in
            total + [rule.method, rule.path, rule.host].reduce(0) { $0 + max(($1?.states.count ?? 1) - 1, 0) }
        }
    }

    private mutating func append(_ dfa: ByteDFA?, base: UInt16) -> UInt16 {
        guard let dfa else { return 0 }
        let start = Int(base) + states.count
        for state in dfa.states.dropFirst() {
            var entry = na_l7_dfa_state()
            let next = state.next.map { $0 == 0 ? UInt16(0) : UInt16(start + Int($0) - 1) }
            withUnsafeMutableBytes(of: &entry.next) { raw in next.withUnsafeBytes { raw.copyMemory(from: $0) } }
            entry.flags = state.accepting ? UInt16(NA_L7_DFA_ACCEPT) : 0
            states.append(entry)
        }
        return UInt16(start)
    }

    private static func requirement(_ header: HTTPHeaderRequirement) throws(AgentError) -> na_l7_header_req {
        let name = Array(header.name.utf8)
        let value = header.value.map { Array($0.utf8) }
        guard !name.isEmpty, name.count <= Int(NA_L7_HEADER_NAME_MAX) else {
            throw .invalidField("headers", "header name \(header.name) is longer than 64 bytes")
        }
        guard (value?.count ?? 0) <= Int(NA_L7_HEADER_VALUE_MAX) else {
            throw .invalidField("headerMatches", "the value required of \(header.name) is longer than 128 bytes")
        }
        var entry = na_l7_header_req()
        entry.name_len = UInt8(name.count)
        setTupleBytes(&entry.name, name)
        if let value {
            entry.flags = UInt8(NA_L7_HDR_VALUE)
            entry.value_len = UInt8(value.count)
            setTupleBytes(&entry.value, value)
        }
        return entry
    }
}

extension na_l7_port_key {
    init(address: IPAddress, port: UInt16) {
        self.init()
        setTupleBytes(&addr, address.bytes)
        self.port = port.bigEndian
        family = address.family.rawValue
    }
}
