import AgentAPI
import Synchronization

/// The identities peers are chosen from, prepared once and shared by every endpoint compiled against them: which
/// identities an item selects is the same for every endpoint, so it is worked out once per item and remembered.
/// Build one per regeneration (identities change between regenerations, so a set must not outlive one).
public final class PolicyPeers: Sendable {
    let universe: PeerUniverse
    /// The named ports of the endpoints of each identity, which egress rules' named ports resolve against.
    let namedPorts: [UInt32: [NamedPort]]
    private let selected = Mutex<[PolicyItem: [UInt32]]>([:])

    /// `services`: the identities of each service's backends, which `toServices` selects. `namedPorts`: the named
    /// ports of each identity's endpoints. `addresses`: the addresses of each identity's pods, which a
    /// NetworkPolicy's `ipBlock` selects pods by.
    public init(
        _ identities: [Identity], services: [ServiceReference: [UInt32]] = [:],
        namedPorts: [UInt32: [NamedPort]] = [:], addresses: [UInt32: [IPAddress]] = [:]
    ) {
        universe = PeerUniverse(identities, services: services, addresses: addresses)
        self.namedPorts = namedPorts
    }

    /// The named ports of `peer`'s endpoints; for any peer (0), every named port known.
    func namedPorts(of peer: UInt32) -> [NamedPort] {
        if peer == 0 { return Array(Set(namedPorts.values.joined())) }
        return namedPorts[peer] ?? []
    }

    /// Peer identities `item` selects, sorted; `[0]` when it selects any peer.
    func identities(for item: PolicyItem) -> [UInt32] {
        if let known = selected.withLock({ $0[item] }) { return known }
        let ids = universe.identities(for: item)
        selected.withLock { $0[item] = ids }
        return ids
    }
}

/// The identities known when compiling, with what peer selection needs to know about each, computed once.
///
/// - Endpoint selectors are evaluated against every identity's labels, except those outside the cluster
///   (reserved world and CIDR identities): those are reached with entities and CIDR peers only, so `{}` in a
///   cluster-wide policy does not open a pod to the internet.
/// - A NetworkPolicy's `ipBlock` also selects pods (identities whose every address it covers).
/// - A CIDR identity is one with a `cidr:` label (`cidr:10.0.0.0/8`; IPv6 may write `-` for `:`) or a number at or
///   above 1<<24. Its prefix is its most specific `cidr:` label.
struct PeerUniverse {
    struct Member {
        let id: UInt32
        let labels: LabelSet
        /// Outside the cluster: world or a CIDR identity.
        let isExternal: Bool
        let prefix: IPPrefix?
    }

    static let cidrSource = "cidr"
    static let firstCIDRIdentity: UInt32 = 1 << 24

    let members: [Member]
    /// The identities of each service's backends.
    let services: [ServiceReference: [UInt32]]
    /// The addresses of each identity's pods.
    let addresses: [UInt32: [IPAddress]]

    init(
        _ identities: [Identity], services: [ServiceReference: [UInt32]] = [:],
        addresses: [UInt32: [IPAddress]] = [:]
    ) {
        self.services = services
        self.addresses = addresses
        var seen: Set<UInt32> = []
        var members: [Member] = []
        for identity in identities where seen.insert(identity.id).inserted {
            let prefixes = identity.labels.labels(ofSource: PeerUniverse.cidrSource).compactMap { label in
                IPPrefix(label.key) ?? IPPrefix(label.key.replacingDashes())
            }
            let prefix = prefixes.max { $0.length < $1.length }
            let world =
                ReservedIdentity.worldIdentities.contains(identity.id)
                || ReservedIdentity.worldIdentities.compactMap(ReservedIdentity.name(of:)).contains {
                    identity.labels.label(source: ReservedIdentity.source, key: $0) != nil
                }
            let external = world || prefix != nil || identity.id >= PeerUniverse.firstCIDRIdentity
            members.append(Member(id: identity.id, labels: identity.labels, isExternal: external, prefix: prefix))
        }
        self.members = members
    }

    /// Peer identities an item selects, sorted; `[0]` when it selects any peer.
    func identities(for item: PolicyItem) -> [UInt32] {
        if item.selectsAnyPeer { return [0] }
        var ids: Set<UInt32> = []
        for selector in item.endpoints ?? [] {
            for member in members where !member.isExternal && selector.matches(member.labels) { ids.insert(member.id) }
        }
        for entity in item.entities ?? [] {
            switch entity {
            case .all: return [0]
            case .host: ids.insert(ReservedIdentity.host)
            case .world: ids.formUnion(worldIdentities())
            case .cluster:
                ids.formUnion(ReservedIdentity.clusterIdentities)
                for member in members
                where !member.isExternal && member.id >= IdentityAllocator.firstLocal { ids.insert(member.id) }
            }
        }
        let peers = (item.cidrs ?? []).map { CIDRPeer(cidr: $0) } + (item.cidrSets ?? [])
        for peer in peers { ids.formUnion(identities(in: peer)) }
        for service in item.services ?? [] { ids.formUnion(services[service] ?? []) }
        return ids.sorted()
    }

    /// Reserved world and every CIDR identity.
    private func worldIdentities() -> [UInt32] {
        [ReservedIdentity.world]
            + members.filter { $0.prefix != nil || $0.id >= PeerUniverse.firstCIDRIdentity }.map(\.id)
    }

    /// CIDR identities whose prefix lies in the peer's prefix and in none of its exceptions. A /0 prefix is the
    /// whole internet and also selects reserved world, the datapath's identity for addresses it has no prefix for.
    private func identities(in peer: CIDRPeer) -> [UInt32] {
        var ids = members.compactMap { member -> UInt32? in
            guard let prefix = member.prefix, peer.cidr.contains(prefix),
                !peer.except.contains(where: { $0.contains(prefix) })
            else { return nil }
            return member.id
        }
        if peer.cidr.length == 0 { ids.append(ReservedIdentity.world) }
        // Pods are selected by identity: an identity only when the block covers every address of its pods, so
        // a pod outside it never gets in by sharing labels with one inside.
        if peer.selectsPods {
            for (id, addresses) in self.addresses where !addresses.isEmpty && addresses.allSatisfy(peer.covers) {
                ids.append(id)
            }
        }
        return ids
    }
}

extension String {
    /// Cilium writes IPv6 CIDR labels with `-` for `:` (a colon would end the label's source).
    fileprivate func replacingDashes() -> String { String(map { $0 == "-" ? ":" : $0 }) }
}
