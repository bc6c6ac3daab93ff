import AgentAPI
import CLibbpf

/// A part of the agent that needs kernel features. `core` and `flows` are always on; the others follow the
/// configuration (`plugins.<name>.enabled`, a `cluster` section, `services.enabled`), named as the plugins name
/// themselves.
public enum AgentFeature: String, Sendable, CaseIterable, Comparable {
    case core
    case flows
    case conntrackGC = "conntrack-gc"
    case cidrPolicy = "cidr-policy"
    case nat
    case ipam
    case cluster
    /// The socket load balancer (`services.enabled`).
    case services

    /// The features every agent runs.
    public static let always: Set<AgentFeature> = [.core, .flows]

    /// The features a configuration turns on: always-on ones, each plugin not disabled in the `plugins` section
    /// (`{"nat": {"enabled": false}}`; plugins are on unless disabled), `cluster` with a `cluster` section, and
    /// `services` when the socket load balancer runs.
    public static func configured(plugins: JSON, cluster: Bool, services: Bool = false) -> Set<AgentFeature> {
        var features = always
        for feature in [AgentFeature.conntrackGC, .cidrPolicy, .nat, .ipam]
        where plugins[feature.rawValue]?["enabled"]?.boolValue != false {
            features.insert(feature)
        }
        if cluster { features.insert(.cluster) }
        if services { features.insert(.services) }
        return features
    }

    public static func < (a: AgentFeature, b: AgentFeature) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// One thing the preflight checks.
public enum Check: Sendable, Hashable {
    case kernelVersion
    case btf
    case bpffs
    case cgroup2
    case clsact
    case tcx
    /// RCU grace periods on request (membarrier).
    case gracePeriod
    case programType(UInt32)
    case mapType(UInt32)
    /// A helper by `bpf_func_id`, with the name the programs call it by (libbpf has no table of helper names) and
    /// the `bpf_prog_type` of the programs that call it (helpers are offered per program type).
    case helper(UInt32, name: String, programType: UInt32)
    case sysctl(String)
}

/// A check, the features that need it (none: reported only, never refuses a start) and what it serves.
public struct Requirement: Sendable {
    public let check: Check
    public let neededBy: [AgentFeature]
    public let purpose: String

    init(_ check: Check, _ neededBy: [AgentFeature], _ purpose: String) {
        self.check = check
        self.neededBy = neededBy
        self.purpose = purpose
    }
}

/// The requirement table: every kernel feature the agent uses and who needs it. The endpoint programs are one
/// object (bpf/endpoint.bpf.c) loaded whole, so every map type and helper in it is needed by `core` whatever is
/// configured; the feature whose code path uses it is named beside `core`. Map types and helpers are what
/// `grep -o 'BPF_MAP_TYPE_[A-Z_]*\|bpf_[a-z0-9_]*(' bpf/` finds (byte-order macros aside).
public enum Requirements {
    public static let table: [Requirement] = [
        Requirement(.kernelVersion, [], "reported only: features are probed, not inferred from the version"),
        Requirement(.bpffs, [.core], "maps are pinned there so they outlive an agent restart"),
        Requirement(.programType(BPF_PROG_TYPE_SCHED_CLS.rawValue), [.core], "the endpoint programs (tc)"),
        Requirement(.clsact, [.core], "endpoint programs attach to a clsact qdisc where there is no tcx"),
        Requirement(.tcx, [], "the tc programs attach there when it is present; clsact otherwise"),
        Requirement(
            .btf, [],
            "HTTP rules: the verdict reads the server socket's tcp_sock.write_seq, placed from the kernel's BTF"),
        Requirement(
            .gracePeriod, [],
            "endpoint rows and ipcache host entries are read from arrays, whose elements are reused only after one"),
        Requirement(
            .cgroup2, [], "the socket load balancer mounts cgroup v2 at services.cgroup-root when no mount is there"),
        map(BPF_MAP_TYPE_HASH, [.core], "na_endpoints"),
        map(
            BPF_MAP_TYPE_ARRAY, [.core, .nat],
            "na_config, na_nat_config, na_ep_slots, na_lb_ports, na_ipcache_v4, na_ipcache_v6, na_ptable, "
                + "na_ptable_ep, na_ptable_ovf, na_ptable_ports, na_ptable_peers, na_ptable_bits"),
        map(BPF_MAP_TYPE_HASH_OF_MAPS, [.core], "na_policy, one policy map per endpoint"),
        map(BPF_MAP_TYPE_LPM_TRIE, [.core, .cidrPolicy, .nat], "na_ipcache, the policy maps, na_nat_cluster"),
        map(BPF_MAP_TYPE_LRU_HASH, [.core, .conntrackGC, .nat], "na_ct, na_drop_agg, na_frags, na_nat"),
        map(
            BPF_MAP_TYPE_PERCPU_ARRAY, [.core, .conntrackGC, .flows],
            "na_ct_created, na_event_stats, na_metrics, na_local_fib, na_local_routes"),
        map(BPF_MAP_TYPE_PROG_ARRAY, [.core], "na_local_prog: delivery between two endpoints of the node"),
        map(BPF_MAP_TYPE_RINGBUF, [.core, .flows], "na_events: flow and drop events"),
        helper(BPF_FUNC_map_lookup_elem, "bpf_map_lookup_elem", [.core], "every map read"),
        helper(BPF_FUNC_map_update_elem, "bpf_map_update_elem", [.core], "conntrack, metrics, NAT mappings"),
        helper(BPF_FUNC_map_delete_elem, "bpf_map_delete_elem", [.core], "conntrack"),
        helper(BPF_FUNC_ktime_get_ns, "bpf_ktime_get_ns", [.core, .flows], "event times"),
        helper(
            BPF_FUNC_ktime_get_coarse_ns, "bpf_ktime_get_coarse_ns", [.core],
            "conntrack and NAT lifetimes (Linux 5.11)"),
        helper(BPF_FUNC_get_prandom_u32, "bpf_get_prandom_u32", [.core, .flows, .nat], "flow sampling, NAT ports"),
        helper(BPF_FUNC_skb_pull_data, "bpf_skb_pull_data", [.core], "reading headers beyond the linear data"),
        helper(BPF_FUNC_skb_store_bytes, "bpf_skb_store_bytes", [.core, .nat], "NAT's address and port rewrite"),
        helper(BPF_FUNC_l3_csum_replace, "bpf_l3_csum_replace", [.core, .nat], "NAT's IP checksum update"),
        helper(BPF_FUNC_l4_csum_replace, "bpf_l4_csum_replace", [.core, .nat], "NAT's TCP/UDP checksum update"),
        helper(BPF_FUNC_csum_diff, "bpf_csum_diff", [.core], "IPv6 address rewrites' checksum (service translation)"),
        helper(BPF_FUNC_skb_load_bytes, "bpf_skb_load_bytes", [.core], "refusing a service without backends"),
        helper(BPF_FUNC_skb_change_tail, "bpf_skb_change_tail", [.core], "refusing a service without backends"),
        helper(
            BPF_FUNC_redirect_peer, "bpf_redirect_peer", [.core],
            "delivery into a pod of the node, and a service's refusal back into the pod (Linux 5.10)"),
        helper(BPF_FUNC_redirect, "bpf_redirect", [.core], "sending a service's refusal back to a client outside"),
        helper(
            BPF_FUNC_fib_lookup, "bpf_fib_lookup", [.core],
            "finding a packet's destination pod on the node; a service's backend on another node from a local one"),
        helper(BPF_FUNC_tail_call, "bpf_tail_call", [.core], "handing a packet for a pod of the node to deliver_local"),
        helper(BPF_FUNC_ringbuf_reserve, "bpf_ringbuf_reserve", [.core, .flows], "flow and drop events"),
        helper(BPF_FUNC_ringbuf_submit, "bpf_ringbuf_submit", [.core, .flows], "flow and drop events"),
        helper(BPF_FUNC_ringbuf_query, "bpf_ringbuf_query", [.core, .flows], "event backpressure"),
        // The socket load balancer (bpf/sock.bpf.c, cgroup hooks), one object: needed when services are enabled.
        Requirement(
            .programType(BPF_PROG_TYPE_CGROUP_SOCK_ADDR.rawValue), [.services],
            "the socket load balancer's cgroup hooks"),
        helper(
            BPF_FUNC_get_socket_cookie, "bpf_get_socket_cookie", [.services], "the socket load balancer's UDP replies",
            of: BPF_PROG_TYPE_CGROUP_SOCK_ADDR),
        helper(
            BPF_FUNC_get_netns_cookie, "bpf_get_netns_cookie", [.services], "ClientIP session affinity (Linux 5.7)",
            of: BPF_PROG_TYPE_CGROUP_SOCK_ADDR),
        helper(
            BPF_FUNC_set_retval, "bpf_set_retval", [.services], "refusing a service without backends (Linux 5.18)",
            of: BPF_PROG_TYPE_CGROUP_SOCK_ADDR),
        // HTTP rules decided in the kernel (bpf/l7.bpf.c): never needed to start. Without them the agent refuses
        // HTTP rules with 501 (its start-up self-test says why), so they are reported, not required.
        map(BPF_MAP_TYPE_SOCKHASH, [], "HTTP rules: the server sockets whose requests the kernel decides"),
        Requirement(
            .programType(BPF_PROG_TYPE_SOCK_OPS.rawValue), [],
            "HTTP rules: enrolling server sockets as they are accepted"),
        Requirement(.programType(BPF_PROG_TYPE_SK_SKB.rawValue), [], "HTTP rules: framing and deciding each request"),
        helper(
            BPF_FUNC_sock_hash_update, "bpf_sock_hash_update", [], "HTTP rules: enrolling a server socket",
            of: BPF_PROG_TYPE_SOCK_OPS),
        helper(
            BPF_FUNC_sk_redirect_hash, "bpf_sk_redirect_hash", [], "HTTP rules: the 403 sent back on the connection",
            of: BPF_PROG_TYPE_SK_SKB),
        helper(
            BPF_FUNC_skc_to_tcp_sock, "bpf_skc_to_tcp_sock", [],
            "HTTP rules: no 403 ahead of an answer the server still owes", of: BPF_PROG_TYPE_SK_SKB),
        helper(
            BPF_FUNC_loop, "bpf_loop", [], "HTTP rules: walking request heads (Linux 5.17)", of: BPF_PROG_TYPE_SK_SKB),
        helper(
            BPF_FUNC_skb_change_head, "bpf_skb_change_head", [], "HTTP rules: a held head put back before its end",
            of: BPF_PROG_TYPE_SK_SKB),
        helper(
            BPF_FUNC_skb_adjust_room, "bpf_skb_adjust_room", [], "HTTP rules: emptying the bytes held for later",
            of: BPF_PROG_TYPE_SK_SKB),
        helper(
            BPF_FUNC_sock_ops_cb_flags_set, "bpf_sock_ops_cb_flags_set", [],
            "HTTP rules: freeing what a closing connection held", of: BPF_PROG_TYPE_SOCK_OPS),
        // The conntrack sweep in the kernel (bpf/ct_gc.bpf.c): never needed to start. Without it the conntrack-gc
        // plugin sweeps from user space (its status says which), so it is reported, not required.
        Requirement(
            .programType(BPF_PROG_TYPE_SYSCALL.rawValue), [], "the conntrack sweep run in the kernel (Linux 5.14)"),
        helper(
            BPF_FUNC_for_each_map_elem, "bpf_for_each_map_elem", [], "the conntrack sweep walking na_ct (Linux 5.13)",
            of: BPF_PROG_TYPE_SYSCALL),
        Requirement(.sysctl(Sysctl.jitEnable), [], "JIT-compiled programs; without, they run in the interpreter"),
        Requirement(.sysctl(Sysctl.unprivilegedBPFDisabled), [], "informational: the agent runs privileged"),
    ]

    /// Every map type, program type and helper the table names: what the live probe asks the kernel about.
    static var mapTypes: [UInt32] { table.compactMap { if case .mapType(let id) = $0.check { id } else { nil } } }
    static var programTypes: [UInt32] {
        table.compactMap { if case .programType(let id) = $0.check { id } else { nil } }
    }
    static var helpers: [(id: UInt32, programType: UInt32)] {
        table.compactMap { if case .helper(let id, _, let type) = $0.check { (id, type) } else { nil } }
    }

    private static func map(_ type: bpf_map_type, _ neededBy: [AgentFeature], _ purpose: String) -> Requirement {
        Requirement(.mapType(type.rawValue), neededBy, purpose)
    }

    private static func helper(
        _ id: bpf_func_id, _ name: String, _ neededBy: [AgentFeature], _ purpose: String,
        of programType: bpf_prog_type = BPF_PROG_TYPE_SCHED_CLS
    ) -> Requirement {
        Requirement(.helper(id.rawValue, name: name, programType: programType.rawValue), neededBy, purpose)
    }
}
