import DatapathCore
import Glibc
import Policy
import Synchronization

/// What the agent knows when it turns datapath flow events into `Flow`s: endpoints (by id and by address),
/// identities, the policy rule table and, in cluster mode, the pods of other nodes by address.
///
/// Taken from the agent's state under its lock as copies of the collections, which costs a few reference counts
/// (they are copy-on-write), so the flow reader never holds the lock while it decodes or indexes. A context serves
/// until the state's version moves: each peer (its address, labels, pod and name) is worked out once for all the
/// events it decodes, not for each, and endpoints are found by address through the table's own index. A class, so
/// that handing it to each batch costs one reference count rather than one per collection it holds.
final class FlowContext: Sendable {
    let endpoints: EndpointTable
    let identities: IdentityAllocator
    let policy: PolicyRepository
    /// Other nodes' pods (cluster mode), which name a peer no local endpoint holds.
    let remote: [IPAddress: RemoteEndpoint]
    /// The `AgentState.version` and `ClusterView.remoteRevision` this context was taken at.
    let version: UInt64
    let remoteRevision: UInt64
    private let prefixes: PrefixMatcher
    private let memo = PeerMemo()

    init(
        endpoints: EndpointTable, identities: IdentityAllocator, policy: PolicyRepository,
        remote: [IPAddress: RemoteEndpoint] = [:], version: UInt64 = 0, remoteRevision: UInt64 = 0
    ) {
        self.endpoints = endpoints
        self.identities = identities
        self.policy = policy
        self.remote = remote
        self.version = version
        self.remoteRevision = remoteRevision
        prefixes = PrefixMatcher(policy: policy)
    }

    /// The agent's current context: `previous` again while the state has not changed since it was taken.
    static func snapshot(of agent: NodeAgent, reusing previous: FlowContext?) -> FlowContext {
        // Asked for every batch of events: compare the versions before copying anything.
        if let previous, agent.state.withLock({ $0.version }) == previous.version,
            (agent.cluster?.view.withLock { $0.remoteRevision } ?? 0) == previous.remoteRevision
        {
            return previous
        }
        let (endpoints, identities, policy, version) = agent.state.withLock { state in
            (state.endpoints, state.identities, state.policy, state.version)
        }
        let (remoteRevision, remote) = agent.cluster?.view.withLock { ($0.remoteRevision, $0.remote) } ?? (0, [:])
        return FlowContext(
            endpoints: endpoints, identities: identities, policy: policy, remote: remote, version: version,
            remoteRevision: remoteRevision)
    }

    /// The flow for one event; `wallOffset` turns the event's CLOCK_MONOTONIC time into wall-clock time.
    func flow(from event: na_flow_event, wallOffset: Int64) -> Flow {
        let family: IPAddress.Family = event.family == UInt8(NA_FAMILY_IPV6) ? .ipv6 : .ipv4
        let egress = event.direction == UInt8(NA_DIR_EGRESS.rawValue)
        // The reporting endpoint stands for its own side when no endpoint has the address (0: none).
        let sourceKey = PeerKey(
            event.saddr, family: family, identity: event.src_identity, fallbackEndpoint: egress ? event.ep_id : 0)
        let destinationKey = PeerKey(
            event.daddr, family: family, identity: event.dst_identity, fallbackEndpoint: egress ? 0 : event.ep_id)
        var (source, destination) = memo.entries.withLock { entries in
            (
                peer(sourceKey, address: event.saddr, memo: &entries),
                peer(destinationKey, address: event.daddr, memo: &entries)
            )
        }
        source.port = UInt16(bigEndian: event.sport)
        destination.port = UInt16(bigEndian: event.dport)
        return Flow(
            time: Int64(bitPattern: event.timestamp_ns) &+ wallOffset,
            verdict: event.verdict == UInt8(NA_VERDICT_DROPPED.rawValue) ? .dropped : .forwarded,
            reasonCode: event.reason, reason: DropReason.name(of: event.reason),
            direction: egress ? .egress : .ingress, proto: event.proto, source: source, destination: destination,
            endpoint: event.ep_id, ifindex: event.ifindex, length: event.length, ruleID: event.rule_id,
            rule: event.rule_id == 0 ? nil : policy.ruleName(event.rule_id))
    }

    /// One end, its port 0: made once per context for each address, identity and fallback endpoint.
    private func peer<Address>(_ key: PeerKey, address: Address, memo: inout PeerMemo.Entries) -> Flow.Peer {
        if memo.recent?.key == key { return memo.recent!.peer }
        if memo.older?.key == key {
            swap(&memo.recent, &memo.older)
            return memo.recent!.peer
        }
        let peer: Flow.Peer
        if let known = memo.peers[key] {
            peer = known
        } else {
            let ip = withUnsafeBytes(of: address) { IPAddress(family: key.family, bytes: Array($0)) }
            peer = makePeer(
                ip, identity: key.identity, fallbackEndpoint: key.fallbackEndpoint == 0 ? nil : key.fallbackEndpoint,
                memo: &memo)
            // Peers from many addresses (the world's) would otherwise grow the memo without bound until the next
            // context.
            if memo.peers.count >= PeerMemo.limit { memo.peers.removeAll(keepingCapacity: true) }
            memo.peers[key] = peer
        }
        swap(&memo.recent, &memo.older)
        memo.recent = (key, peer)
        return peer
    }

    /// One end: the local endpoint with that address, else (for the reporting endpoint's own side, e.g. a spoofed
    /// source) the reporting endpoint, else a pod of another node; its pod; the identity's labels; and a name
    /// people recognise.
    private func makePeer(
        _ ip: IPAddress, identity: UInt32, fallbackEndpoint: UInt32?, memo: inout PeerMemo.Entries
    ) -> Flow.Peer {
        let endpointID = endpoints.id(withAddress: ip) ?? fallbackEndpoint
        let endpoint = endpointID.flatMap { endpoints[$0] }
        var labels: [String]
        if let known = memo.labels[identity] {
            labels = known
        } else {
            labels = identities.identity(id: identity)?.labels.strings ?? []
            memo.labels[identity] = labels
        }
        var prefix: String?
        if labels.isEmpty, identity >= UInt32(NA_ID_LOCAL_CIDR_BASE), let match = prefixes.longestMatch(ip) {
            prefix = match
            labels = ["cidr:\(match)", "reserved:world"]
        }
        var pod = endpoint?.podName
        var node: String?
        if endpoint == nil, let remote = remote[ip] {
            node = remote.node
            if let namespace = remote.namespace, let name = remote.pod { pod = "\(namespace)/\(name)" }
        }
        let name = pod ?? prefix ?? ReservedIdentity.name(of: identity) ?? ip.description
        return Flow.Peer(
            ip: ip, port: 0, identity: identity, labels: labels, endpoint: endpoint?.id, pod: pod, name: name,
            node: node)
    }
}

/// What a flow's end depends on in a context, its port aside: the address as the event carries it (only the first
/// 4 bytes for IPv4), the identity, and the endpoint that stands for that side when no endpoint has the address.
/// Plain integers, so finding a known peer builds no address and no array.
private struct PeerKey: Hashable {
    let high: UInt64
    let low: UInt64
    let family: IPAddress.Family
    let identity: UInt32
    /// 0: none, as in the event's `ep_id`.
    let fallbackEndpoint: UInt32

    /// `address`: the event's 16-byte address field.
    init<Address>(_ address: Address, family: IPAddress.Family, identity: UInt32, fallbackEndpoint: UInt32) {
        let (high, low) = withUnsafeBytes(of: address) { raw in
            (raw.loadUnaligned(as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        // The mask is ff ff ff ff 00 00 00 00 in memory whatever the byte order: the IPv4 address's 4 bytes.
        self.high = family == .ipv4 ? high & UInt64(bigEndian: 0xffff_ffff_0000_0000) : high
        self.low = family == .ipv4 ? 0 : low
        self.family = family
        self.identity = identity
        self.fallbackEndpoint = fallbackEndpoint
    }
}

/// Finished peers, and label strings by identity, made once per context: a busy node reports tens of thousands of
/// flows a second between the same few peers, and building an end's address, strings and arrays for each flow was
/// most of the flow reader's work.
private final class PeerMemo: Sendable {
    /// Peers kept at most; past it the memo starts again (4096 peers take at most about a megabyte).
    static let limit = 4096

    struct Entries {
        var peers: [PeerKey: Flow.Peer] = [:]
        var labels: [UInt32: [String]] = [:]
        /// The last two peers found, looked at before `peers`: flow after flow is between the same two ends, and
        /// comparing keys costs less than hashing them.
        var recent: (key: PeerKey, peer: Flow.Peer)?
        var older: (key: PeerKey, peer: Flow.Peer)?
    }

    let entries = Mutex(Entries())
}

/// Which policy prefix a CIDR identity stands for. The CIDR policy plugin gives every prefix that policies name
/// (except ranges included) its own identity in the ipcache, so the most specific of those prefixes holding an
/// address is the one whose identity the datapath found. Built on first use: most batches have no CIDR peers.
/// (Used only under the peer memo's lock, hence unchecked.)
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
