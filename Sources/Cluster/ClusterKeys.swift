import AgentAPI
import Policy

/// Where the cluster's state lives in etcd, everything under `nodeagent/<cluster>/`:
///
/// | key | value | lease |
/// | --- | --- | --- |
/// | `identities/id/<number>` | `{"labels": [...]}` | none: the cluster's identity |
/// | `identities/labels/<labels>` | the number, as text | none: the reverse index a compare-and-swap creates with it |
/// | `identities/refs/<number>/<node>` | empty | the node's: the node holds the identity |
/// | `ipcache/<address>` | `{"identity", "node", "node-address", "namespace", "pod"}` | the node's |
/// | `nodes/<name>` | `{"name", "address", "pod-cidrs"}` | the node's |
/// | `ipam/pod-cidrs/<prefix>` | the node name | none: kept across restarts |
/// | `policies/namespaced/<namespace>/<name>` | the policy document as submitted | none: the cluster's policy |
/// | `policies/clusterwide/<name>` | the cluster-wide policy document as submitted | none |
/// | `policies/networkpolicy/<namespace>/<name>` | a Kubernetes NetworkPolicy as submitted | none |
/// | `policies/revision` | `{"revision", "node"}`: the policy's revision, written by every policy change | none |
///
/// Keys a node writes under its lease disappear when the node is gone for longer than the lease's TTL.
public struct ClusterKeys: Sendable {
    public let root: String

    public init(cluster: String) { root = "nodeagent/\(cluster)/" }

    public var identityNumbers: String { root + "identities/id/" }
    public var identityLabelIndex: String { root + "identities/labels/" }
    public var identityReferences: String { root + "identities/refs/" }
    public var ipcache: String { root + "ipcache/" }
    public var nodes: String { root + "nodes/" }
    public var podCIDRs: String { root + "ipam/pod-cidrs/" }
    public var policies: String { root + "policies/" }
    public var policyRevision: String { policies + "revision" }

    public func identity(_ id: UInt32) -> String { identityNumbers + String(id) }

    /// The label set's canonical text (sorted labels) names its index entry.
    public func identityLabels(_ labels: LabelSet) -> String { identityLabelIndex + labels.description }

    public func identityReference(_ id: UInt32, node: String) -> String { "\(identityReferences)\(id)/\(node)" }

    /// Every node's reference on `id`.
    public func identityReferences(_ id: UInt32) -> String { "\(identityReferences)\(id)/" }

    public func ipcache(_ address: IPAddress) -> String { ipcache + address.description }

    public func node(_ name: String) -> String { nodes + name }

    /// A policy document's key; namespaces are RFC 1123 labels, so the first `/` after one ends it. Kubernetes
    /// NetworkPolicies have their own folder: one may share its namespace and name with a CiliumNetworkPolicy.
    public func policy(_ key: PolicyKey) -> String {
        if key.isNetworkPolicy { return "\(policies)networkpolicy/\(key.namespace ?? "")/\(key.name)" }
        return key.namespace.map { "\(policies)namespaced/\($0)/\(key.name)" } ?? "\(policies)clusterwide/\(key.name)"
    }

    /// The document named by a `policies/namespaced/...`, `policies/networkpolicy/...` or `policies/clusterwide/...`
    /// key; nil for anything else.
    public func policyKey(inKey key: String) -> PolicyKey? {
        guard key.hasPrefix(policies) else { return nil }
        let path = key.dropFirst(policies.count)
        if path.hasPrefix("clusterwide/") {
            let name = path.dropFirst("clusterwide/".count)
            return name.isEmpty ? nil : PolicyKey(namespace: nil, name: String(name))
        }
        let folder = ["namespaced/", "networkpolicy/"].first { path.hasPrefix($0) }
        guard let folder else { return nil }
        let rest = path.dropFirst(folder.count)
        guard let slash = rest.firstIndex(of: "/"), slash != rest.startIndex, rest.index(after: slash) != rest.endIndex
        else { return nil }
        return PolicyKey(
            namespace: String(rest[..<slash]), name: String(rest[rest.index(after: slash)...]),
            isNetworkPolicy: folder == "networkpolicy/")
    }

    public func podCIDR(_ prefix: IPPrefix) -> String { podCIDRs + prefix.description }

    /// The prefix in an `ipam/pod-cidrs/<prefix>` key.
    public func podCIDR(inKey key: String) -> IPPrefix? {
        guard key.hasPrefix(podCIDRs) else { return nil }
        return IPPrefix(String(key.dropFirst(podCIDRs.count)))
    }

    /// The number in an `identities/id/<number>` key; nil for anything else.
    public func identityNumber(inKey key: String) -> UInt32? {
        guard key.hasPrefix(identityNumbers) else { return nil }
        return UInt32(key.dropFirst(identityNumbers.count))
    }

    /// The number in an `identities/refs/<number>/<node>` key.
    public func identityNumber(inReferenceKey key: String) -> UInt32? {
        guard key.hasPrefix(identityReferences) else { return nil }
        return key.dropFirst(identityReferences.count).split(separator: "/", maxSplits: 1).first.flatMap {
            UInt32($0)
        }
    }

    /// The name in a `nodes/<name>` key.
    public func nodeName(inKey key: String) -> String? {
        guard key.hasPrefix(nodes) else { return nil }
        let name = key.dropFirst(nodes.count)
        return name.isEmpty || name.contains("/") ? nil : String(name)
    }

    /// The address in an `ipcache/<address>` key.
    public func ipcacheAddress(inKey key: String) -> IPAddress? {
        guard key.hasPrefix(ipcache) else { return nil }
        return IPAddress(String(key.dropFirst(ipcache.count)))
    }
}
