import AgentAPI
import Foundation

/// The seed article's five pods, their labels, the servers they run and the reachability the seed policies give
/// them: one definition for the single-node scenario and the one spread over a cluster.
struct SeedPods {
    var frontend: Pod
    /// In web-tier like frontend, without `app=frontend`: the allow rule must not cover it.
    var webOther: Pod
    var backend: Pod
    var postgres: Pod
    /// In api-tier next to backend-api, labelled `role=admin-tool`: intra-namespace traffic is denied too.
    var adminTool: Pod

    /// Labels by pod name (the namespace label is added when an endpoint is registered).
    static let labels: [String: [String]] = [
        "frontend": ["k8s:app=frontend"], "web-other": ["k8s:app=web-other"], "backend-api": ["k8s:app=backend-api"],
        "postgres": ["k8s:app=postgres", "k8s:tenant-id=t1"], "admin-tool": ["k8s:role=admin-tool"],
    ]

    /// The ports each pod serves: the allowed ones and a neighbour the policies must not open.
    var servers: [(Pod, UInt16)] {
        [(backend, 8080), (backend, 9090), (postgres, 5432), (postgres, 5433), (frontend, 80)]
    }

    /// With the seed's two YAML files applied.
    var enforcedMatrix: [Probe] {
        [
            Probe(from: frontend, to: backend, port: 8080, .passes),
            Probe(from: frontend, to: backend, port: 9090, .dropped),
            Probe(from: frontend, to: postgres, port: 5432, .dropped),
            Probe(from: postgres, to: backend, port: 8080, .dropped),
            Probe(from: webOther, to: backend, port: 8080, .dropped),
            Probe(from: adminTool, to: backend, port: 8080, .dropped),
            Probe(from: backend, to: frontend, port: 80, .dropped),
            Probe(from: backend, to: postgres, port: 5432, .passes),
            Probe(from: backend, to: postgres, port: 5433, .dropped),
        ]
    }
}

/// The seed scenario over three nodes of a cluster with a three-member etcd: frontend on node 1, backend-api and
/// web-other on node 2, postgres and admin-tool on node 3, registered as endpoints 1 to 5 in that order, every
/// node knowing the others' pods.
struct ClusterSeedScenario {
    var cluster: ClusterTopology
    var etcd: EtcdCluster
    var agents: [AgentProcess]
    var pods: SeedPods
    /// The identity each pod's endpoint got, by pod name.
    var identities: [String: Int64]

    var frontend: Pod { pods.frontend }
    var webOther: Pod { pods.webOther }
    var backend: Pod { pods.backend }
    var postgres: Pod { pods.postgres }
    var adminTool: Pod { pods.adminTool }
}

extension EndToEndTestCase {
    func makeClusterSeedScenario() throws -> ClusterSeedScenario {
        let cluster = try makeCluster(nodes: 3)
        let etcd = try makeEtcd(members: 3, on: cluster)
        let agents = try startClusterAgents(on: cluster, etcd: etcd)
        let (node1, node2, node3) = (cluster.nodes[0], cluster.nodes[1], cluster.nodes[2])
        let pods = SeedPods(
            frontend: try node1.addPod(namespace: "web-tier", name: "frontend", dualStack: false),
            webOther: try node2.addPod(namespace: "web-tier", name: "web-other", dualStack: false),
            backend: try node2.addPod(namespace: "api-tier", name: "backend-api", dualStack: false),
            postgres: try node3.addPod(namespace: "data-tier", name: "postgres", dualStack: false),
            adminTool: try node3.addPod(namespace: "api-tier", name: "admin-tool", dualStack: false))
        let nodeOf: [String: Int] = ["frontend": 0, "backend-api": 1, "web-other": 1, "postgres": 2, "admin-tool": 2]
        for (pod, port) in pods.servers { _ = try TCPServer(on: pod, port: port, in: cluster.nodes[nodeOf[pod.name]!]) }
        var identities: [String: Int64] = [:]
        let order = [pods.frontend, pods.backend, pods.webOther, pods.postgres, pods.adminTool]
        for (index, pod) in order.enumerated() {
            let endpoint = try agents[nodeOf[pod.name]!].registerEndpoint(
                id: index + 1, pod: pod, labels: SeedPods.labels[pod.name]!)
            identities[pod.name] = endpoint["identity"]?["id"]?.intValue
        }
        // Each node learns the pods of the two others.
        try agents[0].waitForRemoteEndpoints(4)
        try agents[1].waitForRemoteEndpoints(3)
        try agents[2].waitForRemoteEndpoints(3)
        return ClusterSeedScenario(cluster: cluster, etcd: etcd, agents: agents, pods: pods, identities: identities)
    }
}
