import AgentAPI
import Cluster
import DatapathCore
import EtcdClient
import FoundationEssentials
import Logging
import Synchronization

/// The agent's part in a cluster (the `cluster` configuration section): the etcd client, this node's session
/// (its lease and the keys it owns), the cluster's identity numbering, and what the node has learned of the
/// others — their pods' addresses and identities and the nodes themselves. Nil in `NodeAgent` when standalone.
final class ClusterMode: Sendable {
    let config: ClusterConfig
    let nodeAddress: IPAddress
    let keys: ClusterKeys
    let client: EtcdClient
    let session: ClusterSession
    let identities: ClusterIdentities
    let policies: ClusterPolicies
    let policyProgress = Mutex(ClusterPolicyProgress())
    let collector: IdentityCollector
    let routes = NodeRoutes()
    let view = Mutex(ClusterView())
    let mirrors = Mutex<[PrefixMirror]>([])
    let logger = Logger(label: "cluster")

    /// Reads the configuration; the node address defaults to the address of the interface holding the default
    /// route, and its absence is a start-up error naming the option.
    init(config: ClusterConfig) throws(AgentError) {
        self.config = config
        if let address = config.nodeAddress {
            nodeAddress = address
        } else if let address = DefaultRoute.interfaceAddress() {
            nodeAddress = address
        } else {
            throw AgentError.invalidField(
                "cluster.node-address",
                "not given, and no interface holds an IPv4 default route in the agent's network namespace")
        }
        keys = ClusterKeys(cluster: config.name)
        client = EtcdClient(endpoints: config.etcd.endpoints, tls: config.tls, requestTimeout: .seconds(3))
        session = ClusterSession(client: client, ttlSeconds: config.etcd.leaseTTLSeconds, logger: logger)
        identities = ClusterIdentities(client: client, keys: keys)
        policies = ClusterPolicies(client: client, keys: keys)
        collector = IdentityCollector(interval: .milliseconds(config.identityGCIntervalMilliseconds))
    }

    var nodeName: String { config.nodeName }

    /// This node's entry: what other nodes route its pods by.
    func nodeEntry(podCIDRs: [IPPrefix]) -> JSON {
        [
            "name": .string(nodeName), "address": .string(nodeAddress.description),
            "pod-cidrs": .array(podCIDRs.map { .string($0.description) }),
        ]
    }

    func stop() {
        collector.stop()
        for mirror in mirrors.withLock({ $0 }) { mirror.stop() }
        session.stop()
    }
}

/// What this node knows of the rest of the cluster.
struct ClusterView: Sendable {
    /// Other nodes' pod addresses, as programmed into the ipcache.
    var remote: [IPAddress: RemoteEndpoint] = [:] {
        didSet { remoteRevision &+= 1 }
    }
    /// Moves with every change of `remote`: the flow reader names remote pods from a copy taken at a revision.
    private(set) var remoteRevision: UInt64 = 0
    var nodes: [String: ClusterNode] = [:]
}

/// A pod on another node, from its `ipcache/<address>` entry.
struct RemoteEndpoint: Sendable, Equatable {
    var identity: UInt32
    var node: String
    var nodeAddress: IPAddress?
    var namespace: String?
    var pod: String?

    init(identity: UInt32, node: String, nodeAddress: IPAddress?, namespace: String?, pod: String?) {
        self.identity = identity
        self.node = node
        self.nodeAddress = nodeAddress
        self.namespace = namespace
        self.pod = pod
    }

    /// From the entry's JSON; nil when it is not one.
    init?(json: JSON) {
        guard let identity = json["identity"]?.intValue.flatMap({ UInt32(exactly: $0) }),
            let node = json["node"]?.stringValue
        else { return nil }
        self.identity = identity
        self.node = node
        nodeAddress = json["node-address"]?.stringValue.flatMap { IPAddress($0) }
        namespace = json["namespace"]?.stringValue
        pod = json["pod"]?.stringValue
    }

    var json: JSON {
        var object: [String: JSON] = ["identity": .int(Int64(identity)), "node": .string(node)]
        if let nodeAddress { object["node-address"] = .string(nodeAddress.description) }
        if let namespace { object["namespace"] = .string(namespace) }
        if let pod { object["pod"] = .string(pod) }
        return .object(object)
    }
}

/// A node of the cluster, from its `nodes/<name>` entry.
struct ClusterNode: Sendable, Equatable {
    var name: String
    var address: IPAddress
    var podCIDRs: [IPPrefix]
    /// When this node last saw the entry written.
    var lastSeen: Date

    init?(json: JSON, seen: Date) {
        guard let name = json["name"]?.stringValue, let address = json["address"]?.stringValue.flatMap(IPAddress.init)
        else { return nil }
        self.name = name
        self.address = address
        podCIDRs = (json["pod-cidrs"]?.arrayValue ?? []).compactMap { $0.stringValue.flatMap(IPPrefix.init) }
        lastSeen = seen
    }

    var json: JSON {
        [
            "name": .string(name), "address": .string(address.description),
            "pod-cidrs": .array(podCIDRs.map { .string($0.description) }),
            "last-seen": .string(RFC3339.format(nanoseconds: Int64(lastSeen.timeIntervalSince1970 * 1e9))),
        ]
    }
}
