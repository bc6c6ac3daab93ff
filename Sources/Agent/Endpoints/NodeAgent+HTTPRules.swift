import AgentAPI
import Policy

/// HTTP rules are enforced in the kernel or not accepted: a port whose rules could not be enforced would be open at
/// L3/L4 to every request, which is more than the rule's author allowed.
extension NodeAgent {
    /// Why HTTP rules cannot be enforced now; nil when the kernel's L7 enforcement runs.
    var httpEnforcementUnavailable: String? {
        l7 == nil ? l7Problem ?? "the kernel's HTTP enforcement is not running" : nil
    }

    /// Loads and attaches the `l7` object (sharing the endpoint object's ipcache and event maps, so after it) at the
    /// cgroup root the socket load balancer uses, and proves it on a connection of its own. Any failure leaves HTTP
    /// rules refused, with the reason kept for healthz and the 501s.
    static func startL7(config: AgentConfig, maxEntries: [String: UInt32]) -> (L7Enforcement?, String?) {
        let enforcement: L7Enforcement
        do {
            enforcement = try L7Enforcement.start(
                cgroupRoot: config.services.cgroupRoot, pinRoot: config.bpfRoot, maxEntries: maxEntries)
        } catch {
            return (nil, "the kernel's HTTP enforcement did not start: \(error.message)")
        }
        if let failure = L7SelfTest.run(enforcement.datapath) {
            enforcement.stop()
            return (
                nil,
                "\(failure) (the test's sockets are the agent's own: its process must be under the cgroup root "
                    + "\(config.services.cgroupRoot))"
            )
        }
        return (enforcement, nil)
    }

    /// Writes one endpoint's HTTP rules into the L7 maps when they differ from what the maps hold.
    func realizeHTTP(_ http: [HTTPPortPolicy], for endpoint: Endpoint, in state: inout AgentState) throws {
        guard let l7 else { return }
        let wanted = RealizedHTTP(identity: endpoint.identity, addresses: endpoint.addresses, ports: http)
        let current = state.realizedHTTP[endpoint.id]
        guard current != wanted, !(current == nil && http.isEmpty) else { return }
        if http.isEmpty {
            try l7.datapath.remove(endpoint: endpoint.id)
            state.realizedHTTP[endpoint.id] = nil
        } else {
            try l7.datapath.apply(
                endpoint: endpoint.id, identity: endpoint.identity, addresses: endpoint.addresses, ports: http)
            state.realizedHTTP[endpoint.id] = wanted
            // Ports (or addresses) new to the maps may hold connections accepted before: never left unchecked.
            let before = Set((current?.ports ?? []).map(\.port))
            let gained = Set(http.map(\.port)).subtracting(current?.addresses == endpoint.addresses ? before : [])
            if !gained.isEmpty {
                let reset = try L7ConnectionReset.reset(addresses: endpoint.addresses, ports: gained)
                if reset > 0 {
                    logger.info(
                        "reset connections accepted before their port had HTTP rules",
                        metadata: ["endpoint": "\(endpoint.id)", "ports": "\(gained.sorted())", "reset": "\(reset)"])
                }
            }
        }
    }

    /// The endpoint is gone: its ports leave the L7 maps.
    func forgetHTTP(endpoint id: UInt32, in state: inout AgentState) {
        guard state.realizedHTTP.removeValue(forKey: id) != nil else { return }
        do {
            try l7?.datapath.remove(endpoint: id)
        } catch {
            logger.warning("removing an endpoint's HTTP rules", metadata: ["endpoint": "\(id)", "error": "\(error)"])
        }
    }

    /// `l7` of `GET /v1/healthz`.
    func l7Health() -> JSON {
        if let l7 { return ["state": "running", "cgroup-root": .string(l7.cgroupRoot)] }
        return ["state": "unavailable", "reason": .string(httpEnforcementUnavailable ?? "")]
    }

    /// 501 naming the first HTTP rule of `documents` when the kernel cannot enforce it.
    func checkHTTPRulesEnforceable(_ documents: [PolicyDocument]) throws(AgentError) {
        guard let reason = httpEnforcementUnavailable else { return }
        for document in documents {
            for rule in document.rules where rule.hasHTTPRules {
                throw AgentError.unsupported(
                    "\(document.key): \(rule.path): HTTP rules (rules.http) cannot be enforced: \(reason)")
            }
        }
    }

    /// The same check for one endpoint's compiled policy, for rules that reach it another way (from the cluster).
    func checkHTTPRulesEnforceable(_ http: [HTTPPortPolicy], endpoint: UInt32) throws(AgentError) {
        guard !http.isEmpty, let reason = httpEnforcementUnavailable else { return }
        throw AgentError.unsupported(
            "endpoint \(endpoint): HTTP rules on port \(http[0].port) cannot be enforced: \(reason)")
    }
}

/// What the L7 maps were written with for one endpoint.
struct RealizedHTTP: Equatable, Sendable {
    var identity: UInt32
    var addresses: [IPAddress]
    var ports: [HTTPPortPolicy]
}

extension PolicyRule {
    /// Whether any ingress item's ports carry `rules.http` (the only section that may).
    public var hasHTTPRules: Bool {
        (ingress ?? []).contains { item in (item.ports ?? []).contains { $0.http != nil } }
    }
}
