import DatapathCore
import Foundation
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
        var byPrefix: [String: UInt32] = [:]
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
        let map: TypedMap<na_ipcache_key, na_ipcache_value> = try datapath.typedMap("na_ipcache")
        var found: [String: UInt32] = [:]
        for (key, value) in try map.entries() where value.identity >= Self.firstIdentity {
            guard let prefix = key.prefix else { continue }
            found[prefix.description] = value.identity
        }
        state.withLock { state in
            state.byPrefix = found
            state.nextIdentity = max(Self.firstIdentity, (found.values.max() ?? 0) &+ 1)
        }
    }

    public func acquire(prefixes: Set<String>) throws -> [String: UInt32] {
        try state.withLock { state in
            guard let datapath = state.datapath else {
                throw AgentError.unavailable("the cidr-policy plugin is not started")
            }
            let map: TypedMap<na_ipcache_key, na_ipcache_value> = try datapath.typedMap("na_ipcache")
            var result: [String: UInt32] = [:]
            for text in prefixes.sorted() {
                guard let prefix = IPPrefix(text) else {
                    throw AgentError.invalidField("cidr", "\"\(text)\" is not a prefix")
                }
                let canonical = prefix.description
                if let id = state.byPrefix[canonical] {
                    result[text] = id
                    continue
                }
                let id = state.nextIdentity
                state.nextIdentity &+= 1
                var value = na_ipcache_value()
                value.identity = id
                try map.update(na_ipcache_key(prefix), value)
                state.byPrefix[canonical] = id
                result[text] = id
            }
            return result
        }
    }

    public func release(keeping keep: Set<String>) throws {
        try state.withLock { state in
            guard let datapath = state.datapath else { return }
            let map: TypedMap<na_ipcache_key, na_ipcache_value> = try datapath.typedMap("na_ipcache")
            let kept = Set(keep.compactMap { IPPrefix($0)?.description })
            for (prefix, _) in state.byPrefix where !kept.contains(prefix) {
                if let parsed = IPPrefix(prefix) { try map.delete(na_ipcache_key(parsed)) }
                state.byPrefix[prefix] = nil
            }
        }
    }

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
