extension PolicyCompiler {
    /// The HTTP policy of each port of the endpoint that ingress HTTP rules name, from the rules selecting it.
    ///
    /// Per port: the distinct rules (identical rules of several policies share one bit, numbered by the first
    /// one's rule), and per peer identity the rules that apply to it, which are the rules of the items that select
    /// the peer, each narrowed by its own `fromEndpoints`. Allow rules are a union: a peer that an allow item
    /// without HTTP rules lets reach the port is `unrestricted`. L3/L4 denies are not needed here: the tc program
    /// drops their connections before any request is read. A port with more than `HTTPPortPolicy.maxRules`
    /// distinct rules keeps the first ones, which fails closed (requests only later rules allow are refused).
    /// `open`: ingress is enforced only for its denies (every rule opted out of default deny), so whatever is not
    /// denied passes, every request included.
    static func httpPolicies(
        selecting: [IndexedRule], universe: PolicyPeers, namedPorts: [NamedPort], open: Bool
    ) -> [HTTPPortPolicy] {
        // (port, item peers, rules with the number of the policy rule) of every ingress allow item with HTTP rules.
        var contributions: [(port: UInt16, peers: [UInt32], rules: [(HTTPRule, UInt32)])] = []
        for indexed in selecting {
            for (index, item) in (indexed.rule.ingress ?? []).enumerated() {
                let ruleID = indexed.id(.ingress, deny: false, index: index)
                for spec in item.ports ?? [] {
                    guard let http = spec.http else { continue }
                    let peers = universe.identities(for: item)
                    for port in tcpPorts(of: spec, named: namedPorts) {
                        contributions.append((port, peers, http.map { ($0, ruleID) }))
                    }
                }
            }
        }
        let ports = Set(contributions.map(\.port)).sorted()
        return ports.map { port in
            var programs: [HTTPRuleProgram] = []
            // Keyed by what the rule matches (regex texts and headers), without its peers: cheap to hash, unlike
            // the automata.
            var bits: [HTTPRule: Int] = [:]
            var masks: [UInt32: UInt64] = [:]
            for contribution in contributions where contribution.port == port {
                for (rule, ruleID) in contribution.rules {
                    var matching = rule
                    matching.endpoints = nil
                    let bit: Int
                    if let known = bits[matching] {
                        bit = known
                    } else {
                        guard programs.count < HTTPPortPolicy.maxRules else { continue }
                        bit = programs.count
                        bits[matching] = bit
                        programs.append(rule.program(ruleID: ruleID))
                    }
                    for peer in ruleQualifiedPeers(rule, itemPeers: contribution.peers, universe: universe) {
                        masks[peer, default: 0] |= UInt64(1) << UInt64(bit)
                    }
                }
            }
            var peers = masks.mapValues { HTTPPortPolicy.Access.rules($0) }
            for peer in unrestrictedPeers(port: port, selecting: selecting, universe: universe, named: namedPorts) {
                peers[peer] = .unrestricted
            }
            if open { peers[0] = .unrestricted }
            return HTTPPortPolicy(port: port, rules: programs, peers: peers)
        }
    }

    /// The TCP ports a port spec with HTTP rules stands for (the parser admits single TCP ports and names only).
    private static func tcpPorts(of spec: PortSpec, named: [NamedPort]) -> [UInt16] {
        if let name = spec.name {
            return named.filter { $0.name == name && $0.proto == .tcp }.map(\.port)
        }
        return spec.proto == .tcp && spec.port != 0 ? [spec.port] : []
    }

    /// The item's peers a rule applies to: all of them, or with its own `fromEndpoints` those that it selects too
    /// (any peer, 0, narrowed to what the rule selects).
    private static func ruleQualifiedPeers(_ rule: HTTPRule, itemPeers: [UInt32], universe: PolicyPeers) -> [UInt32] {
        guard let selectors = rule.endpoints else { return itemPeers }
        let selected = universe.identities(for: PolicyItem(endpoints: selectors))
        if itemPeers == [0] { return selected }
        let allowed = Set(itemPeers)
        return selected.filter { allowed.contains($0) }
    }

    /// Peers some ingress allow item without HTTP rules lets reach TCP `port`.
    private static func unrestrictedPeers(
        port: UInt16, selecting: [IndexedRule], universe: PolicyPeers, named: [NamedPort]
    ) -> Set<UInt32> {
        var peers: Set<UInt32> = []
        for indexed in selecting {
            for item in indexed.rule.ingress ?? [] {
                let covers: Bool
                if let specs = item.ports {
                    covers = specs.contains { spec in
                        guard spec.http == nil else { return false }
                        if let name = spec.name {
                            return named.contains {
                                $0.name == name && $0.port == port && $0.proto == .tcp
                                    && (spec.proto == .any || spec.proto == .tcp)
                            }
                        }
                        return (spec.proto == .tcp || spec.proto == .any) && spec.range.contains(port)
                    }
                } else {
                    covers = true
                }
                if covers { peers.formUnion(universe.identities(for: item)) }
            }
        }
        return peers
    }
}
