import AgentAPI
import Foundation
import XCTest

/// Cluster mode's costs, run by `bench/cluster.sh` (skipped unless NODEAGENT_BENCH is set, so the test
/// command stays short): how long a new endpoint on node 1 takes to be enforced on node 2, what each endpoint
/// costs in etcd, the agents' memory and CPU with 3 nodes × 300 endpoints, and how long a policy import on node 1
/// takes until node 3 has applied it. Prints `bench:` lines.
final class ClusterBenchmarkTests: EndToEndTestCase {
    private var environment: [String: String] { ProcessInfo.processInfo.environment }

    func testPropagationAndCost() throws {
        try XCTSkipIf(environment["NODEAGENT_BENCH"] == nil, "benchmark: run bench/cluster.sh")
        let propagationCount = Int(environment["NODEAGENT_BENCH_PROPAGATION"] ?? "") ?? 500
        let perNode = Int(environment["NODEAGENT_BENCH_PER_NODE"] ?? "") ?? 300
        let cluster = try makeCluster(nodes: 3)
        let etcd = try makeEtcd(members: 3, on: cluster)
        let agents = try cluster.nodes.map { try startClusterAgent($0, etcd: etcd, ipam: [:]) }
        let prefix = "nodeagent/na\(cluster.tag)/"
        let clients = try agents.map { try KeepAliveClient(socketPath: $0.socketPath, timeout: 30) }
        let total = propagationCount + perNode * 3
        for (index, node) in cluster.nodes.enumerated() {
            let names = (1...total).map { "cb\(cluster.tag)\(index)x\($0)" }
            try Shell.run(
                ["ip", "-n", node.nodeNetns, "-batch", "-"],
                input: names.map { "link add \($0) type veth peer name \($0)p" }.joined(separator: "\n") + "\n",
                timeout: 300)
        }
        let before = try revision(etcd, cluster)

        // Propagation: one endpoint at a time on node 1, each with a label set new to the cluster one in ten times.
        var propagation: [Double] = []
        var putTimes: [Double] = []
        for id in 1...propagationCount {
            let address = "10.100.\(id / 250).\(id % 250 + 1)"
            let started = Date()
            let body = Self.endpointBody(
                interface: "cb\(cluster.tag)0x\(id)", address: address, app: "p\(id % 10 == 0 ? id : 0)")
            let response = try clients[0].send(.PUT, "/v1/endpoint/\(id)", body)
            guard response.status == 201, let identity = response.json?["identity"]?["id"]?.intValue else {
                return XCTFail("PUT endpoint \(id) on node 1: \(response)")
            }
            putTimes.append(Date().timeIntervalSince(started))
            let deadline = started + 10
            while true {
                let entry = try clients[1].send(.GET, "/v1/ipcache/\(address)")
                if entry.status == 200, entry.json?["identity"]?.intValue == identity,
                    entry.json?["labels"]?.arrayValue?.isEmpty == false
                {
                    break
                }
                guard Date() < deadline else { return XCTFail("node 2 did not enforce \(address) within 10 s") }
                usleep(200)
            }
            propagation.append(Date().timeIntervalSince(started))
        }
        let afterPropagation = try revision(etcd, cluster)
        let keys = try keyCount(etcd, cluster, prefix)
        print(
            "bench: propagation endpoints=\(propagationCount) p50=\(ms(percentile(propagation, 50))) "
                + "p99=\(ms(percentile(propagation, 99))) max=\(ms(propagation.max() ?? 0)) "
                + "put-p50=\(ms(percentile(putTimes, 50)))")
        let writes = Double(afterPropagation - before) / Double(propagationCount)
        print(
            "bench: etcd writes-per-endpoint=\(String(format: "%.2f", writes)) keys=\(keys) "
                + "(nodes 3, endpoints \(propagationCount), label sets \(propagationCount / 10 + 1))")

        // 3 nodes × perNode endpoints, 30 label sets shared by the cluster, created on all nodes at once.
        let cpuBefore = agents.map { cpuSeconds($0) }
        let started = Date()
        let failures = Locked([String]())
        let tag = cluster.tag
        DispatchQueue.concurrentPerform(iterations: 3) { node in
            guard let client = try? KeepAliveClient(socketPath: agents[node].socketPath, timeout: 30) else {
                return failures.withLock { $0.append("node \(node + 1): no API connection") }
            }
            for n in 1...perNode {
                let id = propagationCount + n
                let address = "10.\(200 + node).\(n / 250).\(n % 250 + 1)"
                let body = Self.endpointBody(
                    interface: "cb\(tag)\(node)x\(id)", address: address, app: "s\(n % 30)")
                guard let response = try? client.send(.PUT, "/v1/endpoint/\(id)", body), response.status == 201
                else {
                    failures.withLock { $0.append("node \(node + 1) endpoint \(id)") }
                    continue
                }
            }
        }
        XCTAssertEqual(failures.current, [])
        // Each node knows every endpoint but its own.
        let expected = [perNode * 2, propagationCount + perNode * 2, propagationCount + perNode * 2]
        for (index, agent) in agents.enumerated() { try agent.waitForRemoteEndpoints(expected[index], timeout: 60) }
        let converged = Date().timeIntervalSince(started)
        let cpu = zip(agents, cpuBefore).map { cpuSeconds($0.0) - $0.1 }
        sleep(5)
        let rss = agents.map { rssMiB($0) }
        print(
            "bench: scale nodes=3 endpoints-per-node=\(perNode) converged=\(String(format: "%.1f", converged)) s "
                + "rss-mib=\(rss.map { String(format: "%.1f", $0) }.joined(separator: ",")) "
                + "cpu-s=\(cpu.map { String(format: "%.2f", $0) }.joined(separator: ","))")
        print(
            "bench: etcd keys=\(try keyCount(etcd, cluster, prefix)) revision=\(try revision(etcd, cluster) - before)")

        // Policy: an import on node 1 until node 3 has applied it (its revision moves only once every affected
        // endpoint's map is written), with the 900 endpoints above in place.
        var policyTimes: [Double] = []
        for round in 1...20 {
            let document: JSON = [
                "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                "metadata": ["name": .string("bench-\(round)"), "namespace": "bench"],
                "spec": [
                    "endpointSelector": ["matchLabels": ["app": .string("s\(round % 30)")]],
                    "ingress": [
                        [
                            "fromEndpoints": [["matchLabels": ["app": .string("s\((round + 1) % 30)")]]],
                            "toPorts": [["ports": [["port": "8080", "protocol": "TCP"]]]],
                        ]
                    ],
                ],
            ]
            let started = Date()
            let answer = try clients[0].send(.PUT, "/v1/policy", document)
            guard answer.status == 200, let revision = answer.json?["revision"]?.intValue else {
                return XCTFail("policy import \(round) on node 1: \(answer)")
            }
            while try clients[2].send(.GET, "/v1/policy").json?["revision"]?.intValue ?? 0 < revision {
                guard Date().timeIntervalSince(started) < 10 else { return XCTFail("node 3 did not apply \(revision)") }
                usleep(200)
            }
            policyTimes.append(Date().timeIntervalSince(started))
        }
        print(
            "bench: policy imports=20 node1-to-node3 p50=\(ms(percentile(policyTimes, 50))) "
                + "max=\(ms(policyTimes.max() ?? 0))")
    }

    private static func endpointBody(interface: String, address: String, app: String) -> JSON {
        [
            "interface-name": .string(interface), "addressing": ["ipv4": .string(address)],
            "labels": .array([.string("k8s:app=\(app)"), "k8s:io.kubernetes.pod.namespace=bench"]),
            "k8s-namespace": "bench", "k8s-pod-name": .string(interface),
        ]
    }

    /// etcd's revision: how many writes the store has taken. (`-w fields`: the JSON output carries 64-bit ids
    /// beyond what JSON numbers hold.)
    private func revision(_ etcd: EtcdCluster, _ cluster: ClusterTopology) throws -> Int64 {
        let result = try etcd.etcdctl(["endpoint", "status", "-w", "fields"], from: cluster.nodes[0].nodeNetns)
        guard let value = field("Revision", in: result.stdout) else {
            throw AgentHarnessError("etcdctl endpoint status: \(result.stdout) \(result.stderr)")
        }
        return value
    }

    private func keyCount(_ etcd: EtcdCluster, _ cluster: ClusterTopology, _ prefix: String) throws -> Int64 {
        let result = try etcd.etcdctl(
            ["get", "--prefix", prefix, "--keys-only"], from: cluster.nodes[0].nodeNetns, commandTimeout: 10)
        guard result.status == 0 else { throw AgentHarnessError("etcdctl get --keys-only: \(result.stderr)") }
        return Int64(result.stdout.split(separator: "\n").count)
    }

    /// The value of `"name" : 123` in etcdctl's `fields` output (the first member's, for endpoint status).
    private func field(_ name: String, in output: String) -> Int64? {
        for line in output.split(separator: "\n") where line.hasPrefix("\"\(name)\"") {
            if let value = line.split(separator: ":").last.flatMap({ Int64($0.trimmingCharacters(in: .whitespaces)) }) {
                return value
            }
        }
        return nil
    }

    private func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p / 100).rounded(.up)) - 1)]
    }

    private func ms(_ seconds: Double) -> String { String(format: "%.1fms", seconds * 1000) }

    private func rssMiB(_ agent: AgentProcess) -> Double {
        guard let pid = agent.pid, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return -1 }
        return kib / 1024
    }

    private func cpuSeconds(_ agent: AgentProcess) -> Double {
        guard let pid = agent.pid, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return -1 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14 and stime 15 (1-based over the whole line).
        let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
