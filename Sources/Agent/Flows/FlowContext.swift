import DatapathCore
import Glibc
import Policy
import Synchronization

/// What the agent knows when it turns datapath flow events into `Flow`s: endpoints (by id and by address),
/// identities, the policy rule table and, in cluster mode, the pods of other nodes by address.
///
/// Taken from the agent's state under its lock as copies of the collections, which costs a few reference counts
/// (they are copy-on-write), so the flow reader never holds the lock while it decodes or indexes. A context serves
/// until the state's version moves: the address index and the peers' labels and pod names are worked out once for
/// all the events it decodes, not for each.
struct FlowContext: Sendable {
    let endpoints: [UInt32: Endpoint]
    let identities: IdentityAllocator
    let policy: PolicyRepository
    /// Other nodes' pods (cluster mode), which name a peer no local endpoint holds.
    let remote: [IPAddress: RemoteEndpoint]
    /// The `AgentState.version` and `ClusterView.remoteRevision` this context was taken at.
    let version: UInt64
    let remoteRevision: UInt64
    private let byAddress: [IPAddress: UInt32]
    private let prefixes: PrefixMatcher
    private let memo = PeerMemo()

    init(
        endpoints: [UInt32: Endpoint], identities: IdentityAllocator, policy: PolicyRepository,
        remote: [IPAddress: RemoteEndpoint] = [:], version: UInt64 = 0, remoteRevision: UInt64 = 0
    ) {
        self.endpoints = endpoints
        self.identities = identities
        self.policy = policy
        self.remote = remote
        self.version = version
        self.remoteRevision = remoteRevision
        var byAddress: [IPAddress: UInt32] = [:]
        for endpoint in endpoints.values {
            for address in endpoint.addresses { byAddress[address] = endpoint.id }
        }
        self.byAddress = byAddress
        prefixes = PrefixMatcher(policy: policy)
    }

    /// The agent's current context: `previous` again while the state has not changed since it was taken.
    static func snapshot(of agent: NodeAgent, reusing previous: FlowContext?) -> FlowContext {
        let (endpoints, identities, policy, version) = agent.state.withLock { state in
            (state.endpoints, state.identities, state.policy, state.version)
        }
        let (remoteRevision, remote) = agent.cluster?.view.withLock { ($0.remoteRevision, $0.remote) } ?? (0, [:])
        if let previous, previous.version == version, previous.remoteRevision == remoteRevision { return previous }
        return FlowContext(
            endpoints: endpoints, identities: identities, policy: policy, remote: remote, version: version,
            remoteRevision: remoteRevision)
    }

    /// The flow for one event; `wallOffset` turns the event's CLOCK_MONOTONIC time into wall-clock time.
    func flow(from event: na_flow_event, wallOffset: Int64) -> Flow {
        let family: IPAddress.Family = event.family == UInt8(NA_FAMILY_IPV6) ? .ipv6 : .ipv4
        let egress = event.direction == UInt8(NA_DIR_EGRESS.rawValue)
        let source = IPAddress(family: family, bytes: tupleBytes(event.saddr))
        let destination = IPAddress(family: family, bytes: tupleBytes(event.daddr))
        let reporter = event.ep_id == 0 ? nil : event.ep_id
        return Flow(
            time: Int64(bitPattern: event.timestamp_ns) &+ wallOffset,
            verdict: event.verdict == UInt8(NA_VERDICT_DROPPED.rawValue) ? .dropped : .forwarded,
            reasonCode: event.reason, reason: DropReason.name(of: event.reason),
            direction: egress ? .egress : .ingress, proto: event.proto,
            source: peer(
                source, port: UInt16(bigEndian: event.sport), identity: event.src_identity,
                fallbackEndpoint: egress ? reporter : nil),
            destination: peer(
                destination, port: UInt16(bigEndian: event.dport), identity: event.dst_identity,
                fallbackEndpoint: egress ? nil : reporter),
            endpoint: event.ep_id, ifindex: event.ifindex, length: event.length, ruleID: event.rule_id,
            rule: event.rule_id == 0 ? nil : policy.ruleName(event.rule_id))
    }

    /// One end: the local endpoint with that address, else (for the reporting endpoint's own side, e.g. a spoofed
    /// source) the reporting endpoint, else a pod of another node; its pod; the identity's labels; and a name
    /// people recognise.
    private func peer(_ ip: IPAddress, port: UInt16, identity: UInt32, fallbackEndpoint: UInt32?) -> Flow.Peer {
        let endpointID = byAddress[ip] ?? fallbackEndpoint
        let endpoint = endpointID.flatMap { endpoints[$0] }
        var labels = memo.labels(of: identity) { identities.identity(id: identity)?.labels.strings ?? [] }
        var prefix: String?
        if labels.isEmpty, identity >= UInt32(NA_ID_LOCAL_CIDR_BASE), let match = prefixes.longestMatch(ip) {
            prefix = match
            labels = ["cidr:\(match)", "reserved:world"]
        }
        var pod = endpoint.flatMap { endpoint in memo.pod(of: endpoint.id) { endpoint.podName } }
        var node: String?
        if endpoint == nil, let remote = remote[ip] {
            node = remote.node
            if let namespace = remote.namespace, let name = remote.pod { pod = "\(namespace)/\(name)" }
        }
        let name = pod ?? prefix ?? ReservedIdentity.name(of: identity) ?? ip.description
        return Flow.Peer(
            ip: ip, port: port, identity: identity, labels: labels, endpoint: endpoint?.id, pod: pod, name: name,
            node: node)
    }
}

/// Label strings by identity and pod names by endpoint, made once per context: a busy node reports tens of
/// thousands of flows a second between the same few peers, and building these strings for each was most of the
/// flow reader's work.
private final class PeerMemo: Sendable {
    private let state = Mutex<(labels: [UInt32: [String]], pods: [UInt32: String?])>(([:], [:]))

    func labels(of identity: UInt32, _ make: () -> [String]) -> [String] {
        if let known = state.withLock({ $0.labels[identity] }) { return known }
        let labels = make()
        state.withLock { $0.labels[identity] = labels }
        return labels
    }

    func pod(of endpoint: UInt32, _ make: () -> String?) -> String? {
        if let known = state.withLock({ $0.pods[endpoint] }) { return known }
        let pod = make()
        state.withLock { $0.pods[endpoint] = pod }
        return pod
    }
}

/// Which policy prefix a CIDR identity stands for. The CIDR policy plugin gives every prefix that policies name
/// (except ranges included) its own identity in the ipcache, so the most specific of those prefixes holding an
/// address is the one whose identity the datapath found. Built on first use: most batches have no CIDR peers.
/// (Used only by the flow reader's thread, hence unchecked.)
private final class PrefixMatcher: @unchecked Sendable {
    private let policy: PolicyRepository
    private lazy var sorted: [IPPrefix] = policy.cidrPrefixes.sorted { $0.length > $1.length }

    init(policy: PolicyRepository) { self.policy = policy }

    func longestMatch(_ ip: IPAddress) -> String? {
        sorted.first { $0.contains(ip) }?.description
    }
}

/// Converts CLOCK_MONOTONIC (what `bpf_ktime_get_ns` reads) to wall-clock time.
enum WallClock {
    /// Nanoseconds to add to a CLOCK_MONOTONIC reading to get nanoseconds since the epoch, as of now: taken per
    /// batch of events, so a clock step (NTP) applies to later events.
    static func monotonicOffset() -> Int64 {
        var monotonic = timespec()
        var realtime = timespec()
        clock_gettime(CLOCK_MONOTONIC, &monotonic)
        clock_gettime(CLOCK_REALTIME, &realtime)
        return nanoseconds(realtime) - nanoseconds(monotonic)
    }

    private static func nanoseconds(_ t: timespec) -> Int64 {
        Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }
}
