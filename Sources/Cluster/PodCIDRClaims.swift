import AgentAPI
import EtcdClient

/// Nodes' pod CIDRs from the cluster pool, claimed in etcd: `ipam/pod-cidrs/<prefix>` holds the node's name,
/// created by compare-and-swap and attached to no lease, so a claim outlives agent restarts and etcd's leases
/// (pods keep their addresses). Two nodes claiming at once cannot both create one key: the loser takes the next
/// free subnet.
public struct PodCIDRClaims: Sendable {
    public let client: EtcdClient
    public let keys: ClusterKeys
    /// Attempts before giving up when every try loses a race.
    static let attempts = 32

    public init(client: EtcdClient, keys: ClusterKeys) {
        self.client = client
        self.keys = keys
    }

    /// This node's pod CIDR of `maskSize` from `pools` (subnets in `NodeCIDR`'s order). `previous` is the CIDR the
    /// node claimed before (kept in its state directory): it is claimed again, and its being another node's is a
    /// 409, never a silent different CIDR. Without one, the subnet the node already holds in etcd, else the first
    /// no claim overlaps. 503 naming etcd when it cannot be reached, 507 when the pools are full.
    public func claim(node: String, pools: [IPPrefix], maskSize: Int, previous: IPPrefix?) throws(AgentError)
        -> IPPrefix
    {
        if let previous {
            if try create(previous, node: node) { return previous }
            let holder = try client.get(keys.podCIDR(previous))?.valueString ?? "?"
            throw AgentError.conflict(
                "etcd: pod CIDR \(previous), which this node used before, is claimed by node \"\(holder)\"")
        }
        for _ in 0..<Self.attempts {
            var taken: [IPPrefix] = []
            for kv in try client.range(prefix: keys.podCIDRs).kvs {
                guard let prefix = keys.podCIDR(inKey: kv.key) else { continue }
                let inPool = prefix.length == maskSize && pools.contains { $0.contains(prefix) }
                if kv.valueString == node, inPool { return prefix }
                taken.append(prefix)
            }
            guard let candidate = Self.firstFree(pools: pools, maskSize: maskSize, taken: taken) else {
                throw AgentError.capacity("no free /\(maskSize) pod CIDR left in \(pools.map(\.description))")
            }
            if try create(candidate, node: node) { return candidate }
            // Another node took it first: look again.
        }
        throw AgentError.unavailable("etcd: could not claim a pod CIDR in \(Self.attempts) attempts (contention)")
    }

    /// Every claim: prefix to node name.
    public func claims() throws(AgentError) -> [IPPrefix: String] {
        var result: [IPPrefix: String] = [:]
        for kv in try client.range(prefix: keys.podCIDRs).kvs {
            if let prefix = keys.podCIDR(inKey: kv.key) { result[prefix] = kv.valueString }
        }
        return result
    }

    /// Creates the claim of `prefix` for `node`; true when created or already the node's.
    private func create(_ prefix: IPPrefix, node: String) throws(AgentError) -> Bool {
        let key = keys.podCIDR(prefix)
        let result = try client.txn(
            compare: [EtcdCompare(key: key, .createRevision(0))], success: [.put(key, node)], failure: [.get(key)])
        if result.succeeded { return true }
        if case .range(let found) = result.responses.first, let existing = found.kvs.first {
            return existing.valueString == node
        }
        return false
    }

    /// The first subnet no claim overlaps (claims of another mask size, from an earlier configuration, count).
    static func firstFree(pools: [IPPrefix], maskSize: Int, taken: [IPPrefix]) -> IPPrefix? {
        var index: UInt64 = 0
        while let subnet = NodeCIDR.derive(pools: pools, maskSize: maskSize, index: index) {
            if !taken.contains(where: { $0.contains(subnet) || subnet.contains($0) }) { return subnet }
            index += 1
        }
        return nil
    }
}
