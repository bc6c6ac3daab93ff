import DatapathCore
import FoundationEssentials
import Synchronization

/// CIDR and entity policies: every prefix a policy names (toCIDR, toCIDRSet with its `except` ranges, and the
/// `from` forms) becomes one identity in the ipcache LPM trie, so the datapath's longest-prefix match gives an
/// address the identity of the most specific prefix holding it, and an `except` range its own identity that the
/// rule does not select. One identity per prefix, never per address; prefixes no policy names are released.
public final class CIDRPolicyPlugin: DatapathPlugin, PrefixIdentityProvider {
    public let name = "cidr-policy"
    public var ownedMaps: [String] { [] }

    /// Prefix identities live above 1<<24, as Cilium's node-local CIDR identities do.
    static let firstIdentity = UInt32(NA_ID_LOCAL_CIDR_BASE)

    private struct State {
        var byPrefix: [IPPrefix: UInt32] = [:]
        var nextIdentity = CIDRPolicyPlugin.firstIdentity
        var datapath: Datapath?
    }

    private let state = Mutex(State())

    public init() {}

    public func start(_ context: PluginContext) throws {
        state.withLock { $0.datapath = context.datapath }
        try restoreFromIPCache(context.datapath)
    }

    /// Rebuilds prefix → identity from the pinned ipcache, the datapath's own record of what it enforces.
    private func restoreFromIPCache(_ datapath: Datapath) throws {
        var found: [IPPrefix: UInt32] = [:]
        for (prefix, identity) in try IPCache(datapath: datapath).entries() where identity >= Self.firstIdentity {
            found[prefix] = identity
        }
        state.withLock { state in
            state.byPrefix = found
            state.nextIdentity = max(Self.firstIdentity, (found.values.max() ?? 0) &+ 1)
        }
    }

    public func acquire(prefixes: Set<IPPrefix>) throws -> [IPPrefix: UInt32] {
        try state.withLock { state in
            guard let datapath = state.datapath else {
                throw AgentError.unavailable("the cidr-policy plugin is not started")
            }
            let ipcache = try IPCache(datapath: datapath)
            var result: [IPPrefix: UInt32] = [:]
            // In the order of their text, so the numbers new prefixes get do not depend on hashing order.
            for prefix in prefixes.sorted(by: { $0.description < $1.description }) {
                if let id = state.byPrefix[prefix] {
                    result[prefix] = id
                    continue
                }
                let id = state.nextIdentity
                state.nextIdentity &+= 1
                try ipcache.set(prefix, identity: id)
                state.byPrefix[prefix] = id
                result[prefix] = id
            }
            return result
        }
    }

    public func release(keeping keep: Set<IPPrefix>) throws {
        try state.withLock { state in
            guard let datapath = state.datapath else { return }
            let ipcache = try IPCache(datapath: datapath)
            for (prefix, _) in state.byPrefix where !keep.contains(prefix) {
                try ipcache.remove(prefix)
                state.byPrefix[prefix] = nil
            }
        }
    }

    public var heldPrefixes: Set<IPPrefix> { state.withLock { Set($0.byPrefix.keys) } }

    public func status() -> JSON {
        let count = state.withLock { $0.byPrefix.count }
        return ["prefixes": .int(Int64(count))]
    }

    public func metrics() -> [MetricSample] {
        let count = state.withLock { $0.byPrefix.count }
        return [
            MetricSample(
                name: "nodeagent_cidr_identities", value: Double(count), help: "CIDR prefixes with an identity")
        ]
    }
}
