import Cluster
import DatapathCore
import Policy
import Synchronization

/// Everything the agent decides with, guarded by one lock in `NodeAgent`.
struct AgentState: Sendable {
    static let documentName = "agent-state"

    var endpoints = EndpointTable() { didSet { version = Self.nextVersion() } }
    var identities: IdentityAllocator { didSet { version = Self.nextVersion() } }
    var policy = PolicyRepository() { didSet { version = Self.nextVersion() } }
    /// Changes with every change of `endpoints`, `identities` or `policy`, and names one content of them: numbers
    /// come from one process-wide counter, so putting back an earlier state (a rollback) puts back the number that
    /// went with it, and no two contents ever share one. What is derived from them can be kept until it changes.
    private(set) var version: UInt64 = 0
    private static let versions = Atomic<UInt64>(0)
    private static func nextVersion() -> UInt64 { versions.add(1, ordering: .relaxed).newValue }
    /// What each endpoint's policy map holds, by slot.
    var realized: [UInt32: PolicyMapEntries] = [:]
    /// What the L7 maps hold for each endpoint with HTTP rules.
    var realizedHTTP: [UInt32: RealizedHTTP] = [:]
    /// Endpoint ids without an endpoint whose policy maps are already in place, empty (`SparePolicyMaps.swift`).
    var sparePolicyMaps: Set<UInt32> = []
    /// Ids of deleted endpoints whose emptied policy maps wait to be removed with others (`retirePolicyMaps`).
    var retiredPolicyMaps: Set<UInt32> = []
    /// Addresses of this node (identity host) currently in the ipcache.
    var hostAddresses: Set<IPAddress> = []
    /// Services by id (`Services/NodeAgent+Services.swift`); outside `version`, which nothing of them derives from.
    var services: [UInt32: Service] = [:]

    init(config: AgentConfig) {
        let filter = (try? config.identityIgnoredLabels.map { try LabelFilter(parsing: $0) }) ?? nil
        // In a cluster, numbers come from etcd in the cluster-wide range.
        identities =
            config.cluster == nil
            ? IdentityAllocator(filter: filter ?? .default)
            : IdentityAllocator(filter: filter ?? .default, range: ClusterIdentities.range, numbering: .cluster)
    }

    func ruleName(_ id: UInt32) -> String? { policy.ruleName(id) }

    /// Identities that policy peers are evaluated against: every allocated one plus the reserved ones.
    var identityList: [Identity] { identities.identities }
}
