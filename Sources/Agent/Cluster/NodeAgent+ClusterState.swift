import AgentAPI
import Cluster
import DatapathCore
import FoundationEssentials
import Policy

/// What this node last knew of the cluster, kept in the state directory: an agent restarting while etcd is out of
/// reach still enforces with the identities and remote pods it knew, and does not wait for etcd to serve its API.
extension NodeAgent {
    static let clusterDocument = "cluster"

    func persistClusterCache(_ state: AgentState) throws {
        guard let cluster else { return }
        let view = cluster.view.withLock { $0 }
        let identities = state.identities.learnedIdentities.map { identity -> JSON in
            ["id": .int(Int64(identity.id)), "labels": .array(identity.labels.strings.map(JSON.string))]
        }
        let remote = view.remote.keys.sorted().map { address -> JSON in
            var object = view.remote[address]!.json.objectValue ?? [:]
            object["address"] = .string(address.description)
            return .object(object)
        }
        let document: JSON = [
            "version": 1, "cluster": .string(cluster.config.name), "identities": .array(identities),
            "remote-endpoints": .array(remote), "nodes": .array(view.nodes.keys.sorted().map { view.nodes[$0]!.json }),
        ]
        try store.write(Self.clusterDocument, document)
    }

    /// Loads the saved cluster view before the restored endpoints are regenerated. A document of another cluster
    /// (the configuration changed) is ignored: the watches rebuild the view.
    func restoreClusterCache(_ state: inout AgentState) throws {
        guard let cluster, let document = try store.read(Self.clusterDocument) else { return }
        guard document["cluster"]?.stringValue == cluster.config.name else {
            logger.warning("saved cluster state is of another cluster; ignoring it")
            return
        }
        for item in document["identities"]?.arrayValue ?? [] {
            guard let id = item["id"]?.intValue.flatMap({ UInt32(exactly: $0) }),
                let texts = item["labels"]?.arrayValue?.compactMap(\.stringValue),
                let labels = try? LabelSet(parsing: texts)
            else { continue }
            do {
                try state.identities.learn(Identity(id: id, labels: labels))
            } catch {
                logger.warning("saved cluster identity refused", metadata: ["error": "\(error.message)"])
            }
        }
        var remote: [IPAddress: RemoteEndpoint] = [:]
        for item in document["remote-endpoints"]?.arrayValue ?? [] {
            guard let address = item["address"]?.stringValue.flatMap(IPAddress.init),
                let entry = RemoteEndpoint(json: item)
            else { continue }
            remote[address] = entry
        }
        var nodes: [String: ClusterNode] = [:]
        for item in document["nodes"]?.arrayValue ?? [] {
            let seen = item["last-seen"]?.stringValue.flatMap(RFC3339.parse).map {
                Date(timeIntervalSince1970: Double($0) / 1e9)
            }
            if let node = ClusterNode(json: item, seen: seen ?? Date()) { nodes[node.name] = node }
        }
        cluster.view.withLock {
            $0.remote = remote
            $0.nodes = nodes
        }
    }

    /// Addresses of other nodes' pods the ipcache holds for the cluster: the orphan sweep at restore keeps them.
    var remoteAddresses: Set<IPAddress> {
        cluster.map { Set($0.view.withLock { $0.remote.keys }) } ?? []
    }

    /// Programs the restored remote pods (they are in the pinned ipcache already, unless it was replaced).
    func programRemoteEndpoints(_ state: AgentState) throws {
        guard let cluster else { return }
        for (address, entry) in cluster.view.withLock({ $0.remote })
        where state.endpoints.endpoint(withAddress: address) == nil {
            try ipcache.set(address, identity: entry.identity)
        }
    }
}

/// The etcd lease this node's session holds, kept in the state directory so that an agent restarted within the
/// lease's TTL takes it up again (`ClusterSession.resume`): its keys never leave etcd, where a new lease would let
/// the old one's expiry delete those not yet written again.
extension NodeAgent {
    static let clusterLeaseDocument = "cluster-lease"

    /// Before the session starts: resume the lease saved for this cluster and node, and save every lease it takes.
    func keepClusterLease(_ cluster: ClusterMode) {
        let (name, node, store, logger) = (cluster.config.name, cluster.nodeName, store, cluster.logger)
        do {
            if let saved = try store.read(Self.clusterLeaseDocument), saved["cluster"]?.stringValue == name,
                saved["node"]?.stringValue == node, let lease = saved["lease"]?.intValue
            {
                cluster.session.resume(lease: lease, provedBy: cluster.keys.node(node))
            }
        } catch {
            logger.warning("saved etcd lease unreadable; taking a new one", metadata: ["error": "\(error)"])
        }
        cluster.session.onLease { lease in
            do {
                try store.write(
                    Self.clusterLeaseDocument,
                    ["version": 1, "cluster": .string(name), "node": .string(node), "lease": .int(lease)])
            } catch {
                logger.warning("could not save the etcd lease", metadata: ["error": "\(error)"])
            }
        }
    }
}
