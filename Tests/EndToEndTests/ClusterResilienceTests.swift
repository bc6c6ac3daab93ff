import AgentAPI
import Foundation
import Glibc
import XCTest

/// Cluster mode when parts of it fail, with real traffic: an etcd member killed, every member stopped and
/// started again, an agent killed and restarted within its lease, a node gone for good. Frontend pods on node1
/// talk to a backend on node2 under the seed policies (imported on each node), so an allowed flow crosses both
/// nodes' enforcement and needs node2 to know node1's pods and identities.
final class ClusterResilienceTests: EndToEndTestCase {
    private struct Scenario {
        var cluster: ClusterTopology
        var etcd: EtcdCluster
        var agents: [AgentProcess]
        var frontend: Pod
        var backend: Pod
    }

    /// Two or more nodes: frontend on node1, backend (8080 allowed, 9090 denied) on node2, the seed policies on
    /// every node; each node knows the other's pods.
    private func makeScenario(nodes: Int = 2, leaseTTL: String = "5s") throws -> Scenario {
        let cluster = try makeCluster(nodes: nodes)
        let etcd = try makeEtcd(members: 3, on: cluster)
        let agents = try startClusterAgents(on: cluster, etcd: etcd, leaseTTL: leaseTTL)
        for agent in agents { cluster.addDiagnostics { agent.stderrTail() } }
        let frontend = try cluster.nodes[0].addPod(namespace: "web-tier", name: "frontend", dualStack: false)
        let backend = try cluster.nodes[1].addPod(namespace: "api-tier", name: "backend-api", dualStack: false)
        for port: UInt16 in [8080, 9090] { _ = try TCPServer(on: backend, port: port, in: cluster.nodes[1]) }
        try agents[0].registerEndpoint(id: 1, pod: frontend, labels: ["k8s:app=frontend"])
        try agents[1].registerEndpoint(id: 1, pod: backend, labels: ["k8s:app=backend-api"])
        try agents[0].waitForRemoteEndpoints(1)
        try agents[1].waitForRemoteEndpoints(1)
        for agent in agents {
            for name in ["default-deny-all.yaml", "allow-traffic-policy.yaml"] {
                let result = try agent.nodectl("policy", "import", try fixture(name))
                XCTAssertEqual(result.status, 0, "nodectl policy import \(name): \(result.stderr)")
                try agent.waitForPolicyRevision()
            }
        }
        let s = Scenario(cluster: cluster, etcd: etcd, agents: agents, frontend: frontend, backend: backend)
        assertAllowedAndDenied(s, "before anything fails")
        return s
    }

    private func assertAllowedAndDenied(
        _ s: Scenario, from pods: [Pod]? = nil, _ context: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        assertReachability(
            (pods ?? [s.frontend]).flatMap {
                [
                    Probe(from: $0, to: s.backend, port: 8080, .passes),
                    Probe(from: $0, to: s.backend, port: 9090, .dropped),
                ]
            }, context, file: file, line: line)
    }

    /// A new pod on node1 labelled as a frontend plus a label no pod has: a label set new to the cluster, which the
    /// frontend policies on both nodes select.
    private func addCanary(_ s: Scenario, _ name: String) throws -> (Pod, [String]) {
        let pod = try s.cluster.nodes[0].addPod(namespace: "web-tier", name: name, dualStack: false)
        return (pod, ["k8s:app=frontend", "k8s:track=\(name)"])
    }

    private func etcdKey(_ s: Scenario, _ suffix: String) -> String { "nodeagent/na\(s.cluster.tag)/\(suffix)" }

    func testKillingOneEtcdMemberChangesNothing() throws {
        let s = try makeScenario()
        let prober = ConnectionProber(from: s.frontend.netns, to: s.backend.ipv4, port: 8080, every: 0.02)
        let stream = try StreamingConnection(from: s.frontend.netns, to: s.backend.ipv4, port: 8080)
        // Member 0 is the one every agent talks to first: its watches break and must be listed again elsewhere.
        s.etcd.kill(0)

        let (canary, labels) = try addCanary(s, "canary")
        let started = Date()
        let endpoint = try s.agents[0].registerEndpoint(id: 2, pod: canary, labels: labels)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "a new label set with one member down")
        let identity = try XCTUnwrap(endpoint["identity"]?["id"]?.intValue, "\(endpoint)")
        XCTAssertTrue((256...65535).contains(identity), "cluster range: \(identity)")
        try s.agents[1].waitForRemoteEndpoints(2)
        XCTAssertEqual(try s.agents[1].api(.GET, "/v1/identity/\(identity)").status, 200, "node2 learned it")
        assertAllowedAndDenied(s, from: [s.frontend, canary], "one etcd member killed")

        // Node1's drop of the denied connection names the backend with its node.
        let drops = try s.agents[0].waitForFlows("verdict=DROPPED&last=1000") { flows in
            flows.contains { $0["destination"]?["port"]?.intValue == 9090 }
        }
        let drop = try XCTUnwrap(drops.first { $0["destination"]?["port"]?.intValue == 9090 }, "\(drops)")
        XCTAssertEqual(drop["destination"]?["pod"]?.stringValue, "api-tier/backend-api", "\(drop)")
        XCTAssertEqual(drop["destination"]?["pod-name"]?.stringValue, "backend-api", "\(drop)")
        XCTAssertEqual(drop["destination"]?["node"]?.stringValue, s.cluster.nodes[1].nodeName, "\(drop)")
        XCTAssertNil(drop["source"]?["node"], "the source is this node's: \(drop)")

        // Both agents watched through member 0 first: every watch broke and was listed again elsewhere.
        for agent in s.agents {
            let scrape = try agent.waitForMetrics { scrape in
                ["identities-id", "ipcache", "nodes"].allSatisfy {
                    (scrape.value("nodeagent_cluster_watch_relists_total", ["prefix": $0]) ?? 0) >= 1
                }
            }
            for prefix in ["identities-id", "ipcache", "nodes"] {
                XCTAssertGreaterThanOrEqual(
                    scrape.value("nodeagent_cluster_watch_relists_total", ["prefix": prefix]) ?? 0, 1, prefix)
                XCTAssertEqual(scrape.value("nodeagent_cluster_watch_synced", ["prefix": prefix]), 1, prefix)
            }
            XCTAssertEqual(scrape.value("nodeagent_cluster_nodes"), 2)
            XCTAssertGreaterThan(
                scrape.value("nodeagent_etcd_operations_total", ["kind": "range", "outcome": "success"]) ?? 0, 0)
        }
        XCTAssertEqual(try s.agents[1].scrape().value("nodeagent_cluster_remote_endpoints"), 2)

        let tally = prober.stop()
        let streamed = stream.stop()
        XCTAssertEqual(tally.echoed, tally.attempts, "new allowed connections while a member died: \(tally)")
        XCTAssertGreaterThan(tally.attempts, 20, "\(tally)")
        XCTAssertNil(streamed.broken, "an established connection while a member died: \(streamed)")
        XCTAssertEqual(streamed.errors, 0, "\(streamed)")
    }

    /// A member that stops answering without closing its connections (as behind a partition): requests to it time
    /// out instead of failing, and a watch through it just goes quiet.
    func testAHungEtcdMemberChangesNothing() throws {
        let s = try makeScenario()
        let prober = ConnectionProber(from: s.frontend.netns, to: s.backend.ipv4, port: 8080, every: 0.02)
        let pid = try XCTUnwrap(s.etcd.pid(0))
        Glibc.kill(pid, SIGSTOP)
        defer { Glibc.kill(pid, SIGCONT) }

        let (canary, labels) = try addCanary(s, "canary")
        let started = Date()
        let endpoint = try s.agents[0].registerEndpoint(id: 2, pod: canary, labels: labels)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "a new label set with one member hung")
        let identity = try XCTUnwrap(endpoint["identity"]?["id"]?.intValue, "\(endpoint)")
        try s.agents[1].waitForRemoteEndpoints(2, timeout: 15)
        XCTAssertEqual(try s.agents[1].api(.GET, "/v1/identity/\(identity)").status, 200, "node2 learned it")
        assertAllowedAndDenied(s, from: [s.frontend, canary], "one etcd member hung")
        let asked = Date()
        let health = try s.agents[0].clusterHealth()
        XCTAssertLessThan(
            Date().timeIntervalSince(asked), 2, "a hung member holds up /v1/healthz by one second at most")
        let members = health["etcd"]?["members"]?.arrayValue ?? []
        XCTAssertEqual(members.map { $0["healthy"]?.boolValue }, [false, true, true], "\(members)")
        XCTAssertEqual(health["etcd"]?["state"]?.stringValue, "reachable")
        // Node2's watches read from the hung member: they were given up and listed again through another.
        let scrape = try s.agents[1].scrape()
        for prefix in ["identities-id", "ipcache", "nodes"] {
            XCTAssertGreaterThanOrEqual(
                scrape.value("nodeagent_cluster_watch_relists_total", ["prefix": prefix]) ?? 0, 1, prefix)
        }

        let tally = prober.stop()
        XCTAssertEqual(tally.echoed, tally.attempts, "new allowed connections while a member hung: \(tally)")
        XCTAssertGreaterThan(tally.attempts, 20, "\(tally)")
    }

    func testAllMembersDownKeepsTheDatapathAndConvergesWhenBack() throws {
        let s = try makeScenario()
        let prober = ConnectionProber(from: s.frontend.netns, to: s.backend.ipv4, port: 8080, every: 0.02)
        let stream = try StreamingConnection(from: s.frontend.netns, to: s.backend.ipv4, port: 8080)
        s.etcd.stopAll()

        // A new label set needs etcd: 503 naming it, within the client's request timeout, and nothing applied.
        let (canary, labels) = try addCanary(s, "canary")
        let started = Date()
        let refused = try s.agents[0].api(
            .PUT, "/v1/endpoint/3",
            [
                "interface-name": .string(canary.hostInterface), "addressing": ["ipv4": .string(canary.ipv4)],
                "labels": JSON(labels + ["k8s:io.kubernetes.pod.namespace=web-tier"]),
                "k8s-namespace": "web-tier", "k8s-pod-name": .string(canary.name),
            ])
        XCTAssertLessThan(Date().timeIntervalSince(started), 8, "the answer comes within a bounded time")
        XCTAssertEqual(refused.status, 503, "\(refused)")
        XCTAssertTrue(refused.body.contains("etcd"), "the error names etcd: \(refused.body)")
        XCTAssertEqual(try s.agents[0].api(.GET, "/v1/endpoint/3").status, 404, "no endpoint was created")
        let saved =
            (try? FileManager.default.contentsOfDirectory(atPath: "\(s.agents[0].stateDirectory)/endpoints")) ?? []
        XCTAssertFalse(saved.contains { $0.hasPrefix("3") }, "no saved endpoint 3: \(saved)")
        XCTAssertTrue(saved.contains { $0.hasPrefix("1") }, "endpoint 1 is saved there: \(saved)")

        // A label set the node knows needs nothing of etcd.
        let twin = try s.cluster.nodes[0].addPod(namespace: "web-tier", name: "frontend-twin", dualStack: false)
        let known = try s.agents[0].registerEndpoint(id: 2, pod: twin, labels: ["k8s:app=frontend"])
        let frontendIdentity = try s.agents[0].api(.GET, "/v1/endpoint/1").json?["identity"]?["id"]?.intValue
        XCTAssertEqual(known["identity"]?["id"]?.intValue, frontendIdentity, "the known identity is reused")

        assertAllowedAndDenied(s, "every etcd member down")
        let health = try s.agents[0].clusterHealth()
        XCTAssertEqual(health["etcd"]?["state"]?.stringValue, "unreachable", "\(health)")
        let status = try s.agents[0].nodectl("status")
        XCTAssertEqual(status.status, 0, status.stderr)
        XCTAssertTrue(status.stdout.contains("unreachable"), "nodectl status names etcd unreachable:\n\(status.stdout)")

        try s.etcd.startAll()
        try s.etcd.waitHealthy()
        // The twin's address was written while etcd was away: it appears now, and node2 learns it.
        let twinKey = etcdKey(s, "ipcache/\(twin.ipv4)")
        try waitUntil("the twin's ipcache entry is in etcd", timeout: 15) {
            try s.etcd.get(twinKey, from: s.cluster.nodes[0].nodeNetns) != nil
        }
        try s.agents[1].waitForRemoteEndpoints(2, timeout: 15)
        let canaryEndpoint = try s.agents[0].registerEndpoint(id: 3, pod: canary, labels: labels)
        XCTAssertNotNil(canaryEndpoint["identity"]?["id"]?.intValue, "\(canaryEndpoint)")
        try s.agents[1].waitForRemoteEndpoints(3, timeout: 15)
        assertAllowedAndDenied(s, from: [s.frontend, twin, canary], "etcd back")
        XCTAssertEqual(try s.agents[0].clusterHealth()["etcd"]?["state"]?.stringValue, "reachable")
        let scrape = try s.agents[0].scrape()
        XCTAssertGreaterThan(scrape.value("nodeagent_cluster_session_errors_total") ?? 0, 0, "the outage was counted")
        let unavailable = scrape.all("nodeagent_etcd_operations_total").filter { $0.key["outcome"] == "unavailable" }
        XCTAssertGreaterThan(unavailable.values.reduce(0, +), 0, "requests that found etcd away: \(unavailable)")

        let tally = prober.stop()
        let streamed = stream.stop()
        XCTAssertEqual(tally.echoed, tally.attempts, "new allowed connections while etcd was down: \(tally)")
        XCTAssertGreaterThan(tally.attempts, 100, "\(tally)")
        XCTAssertNil(streamed.broken, "an established connection while etcd was down: \(streamed)")
    }

    func testAnAgentRestartedWithinItsLeaseDisturbsNothing() throws {
        // A 20 s lease, renewed every third of it, so at least 13 s are left at the kill: a debug build's start
        // takes about 2 s on an idle machine and 8 s or more on a loaded one.
        let s = try makeScenario(leaseTTL: "20s")
        let prober = ConnectionProber(from: s.frontend.netns, to: s.backend.ipv4, port: 8080, every: 0.02)
        let stream = try StreamingConnection(from: s.frontend.netns, to: s.backend.ipv4, port: 8080)
        let watcher = RemoteEndpointWatcher(s.agents[1])
        let lease = try waitForLease(s.agents[0])

        let killed = Date()
        s.agents[0].kill(signal: SIGKILL)
        XCTAssertNotNil(s.agents[0].waitForExit(timeout: 5), "the agent died")
        try s.agents[0].start()
        // The restart counts only when it ends within what was left of the lease at the kill, before etcd could
        // drop anything of it.
        let restarted = Date().timeIntervalSince(killed)
        XCTAssertLessThan(restarted, 13, "restarted within the lease")
        XCTAssertEqual(try waitForLease(s.agents[0]), lease, "the restarted agent took its lease up again")
        // Past the TTL the lease had at the kill: it was renewed, so nothing of the node went.
        Thread.sleep(forTimeInterval: max(1, 21 - Date().timeIntervalSince(killed)))
        assertAllowedAndDenied(s, "after the agent's restart and its old lease's expiry")

        let seen = watcher.stop()
        XCTAssertEqual(seen.minimum, 1, "node2 never lost node1's pod: \(seen)")
        XCTAssertGreaterThan(seen.samples, 20, "\(seen)")
        let tally = prober.stop()
        let streamed = stream.stop()
        XCTAssertEqual(tally.echoed, tally.attempts, "new allowed connections through the restart: \(tally)")
        XCTAssertGreaterThan(tally.attempts, 100, "\(tally)")
        XCTAssertNil(streamed.broken, "an established connection through the restart: \(streamed)")
    }

    /// A pod deleted while its node's agent was down: the restarted agent takes its lease up again, so nothing of the
    /// node runs out with it, and deletes the pod's entry itself (the restore removes the endpoint whose interface
    /// is gone). With a 60 s lease, only that deletion takes the pod from node2 within the test's time.
    func testAPodDeletedWhileItsAgentWasDownLeavesTheClusterWhenTheAgentReturns() throws {
        let s = try makeScenario(leaseTTL: "60s")
        let (canary, labels) = try addCanary(s, "canary")
        try s.agents[0].registerEndpoint(id: 2, pod: canary, labels: labels)
        try s.agents[1].waitForRemoteEndpoints(2)
        XCTAssertTrue(try ipcacheDump(s.agents[1]).contains("\"\(canary.ipv4)"), "node2 has the canary")
        let lease = try waitForLease(s.agents[0])
        let watcher = RemoteEndpointWatcher(s.agents[1])

        s.agents[0].kill(signal: SIGKILL)
        XCTAssertNotNil(s.agents[0].waitForExit(timeout: 5), "the agent died")
        try Netns.delete(canary.netns)
        try s.agents[0].start()
        XCTAssertEqual(try waitForLease(s.agents[0]), lease, "the restarted agent took its lease up again")
        try s.agents[1].waitForRemoteEndpoints(1, timeout: 15)
        let known = try ipcacheDump(s.agents[1])
        XCTAssertFalse(known.contains("\"\(canary.ipv4)"), "node2 dropped the deleted pod: \(known)")
        XCTAssertTrue(known.contains("\"\(s.frontend.ipv4)"), "node2 kept the frontend: \(known)")
        try waitUntil("agent 1 in sync", timeout: 10) { try s.agents[0].clusterHealth()["synced"]?.boolValue == true }
        assertAllowedAndDenied(s, "after the restart that removed the canary")
        let seen = watcher.stop()
        XCTAssertEqual(seen.minimum, 1, "node2 never lost the frontend: \(seen)")
    }

    /// The etcd lease the agent's session holds, once it holds one.
    private func waitForLease(_ agent: AgentProcess) throws -> Int64 {
        var lease: Int64?
        try waitUntil("the agent's etcd lease", timeout: 15) {
            lease = try agent.clusterHealth()["etcd"]?["lease"]?.intValue
            return lease != nil
        }
        return try XCTUnwrap(lease)
    }

    /// Restarted while every etcd member is down, the agent enforces with what it saved of the cluster (identities,
    /// remote pods, routes), and converges when etcd returns.
    func testAnAgentRestartedWhileEtcdIsDownEnforcesWhatItKnew() throws {
        let s = try makeScenario()
        s.etcd.stopAll()
        s.agents[0].kill(signal: SIGKILL)
        XCTAssertNotNil(s.agents[0].waitForExit(timeout: 5), "the agent died")
        try s.agents[0].start()
        XCTAssertEqual(try s.agents[0].clusterHealth()["remote-endpoints"]?.intValue, 1, "restored from cluster.json")
        XCTAssertTrue(
            try Shell.run(["ip", "-n", s.cluster.nodes[0].nodeNetns, "route", "show", "proto", "78"])
                .contains(s.cluster.nodes[1].addressing.ipv4CIDR), "the route to node2's pods")
        assertAllowedAndDenied(s, "agent restarted with etcd down")

        // The lease node1 held before its restart comes back with etcd: the restarted agent takes it up again (a new
        // one when it ran out), and node2 must never see node1's pod go.
        let watcher = RemoteEndpointWatcher(s.agents[1])
        try s.etcd.startAll()
        try s.etcd.waitHealthy()
        let (canary, labels) = try addCanary(s, "canary")
        let endpoint = try s.agents[0].registerEndpoint(id: 2, pod: canary, labels: labels)
        XCTAssertNotNil(endpoint["identity"]?["id"]?.intValue, "\(endpoint)")
        try s.agents[1].waitForRemoteEndpoints(2, timeout: 15)
        Thread.sleep(forTimeInterval: 6)
        assertAllowedAndDenied(s, from: [s.frontend, canary], "etcd back after the restart, the old lease gone")
        let seen = watcher.stop()
        XCTAssertGreaterThanOrEqual(seen.minimum, 1, "node2 never lost node1's pod: \(seen)")
        XCTAssertEqual(try s.agents[1].clusterHealth()["remote-endpoints"]?.intValue, 2)
    }

    func testANodeGoneForGoodIsDroppedAfterItsLease() throws {
        let s = try makeScenario(nodes: 3)
        let node3 = s.cluster.nodes[2]
        let pod = try node3.addPod(namespace: "data-tier", name: "postgres", dualStack: false)
        try s.agents[2].registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=postgres"])
        for index in 0..<2 {
            try s.agents[index].waitForRemoteEndpoints(2)
            XCTAssertTrue(try agentRoutes(on: s.cluster.nodes[index]).contains(node3.addressing.ipv4CIDR))
            XCTAssertTrue(try nodeList(s.agents[index]).contains(node3.nodeName))
            XCTAssertTrue(try ipcacheDump(s.agents[index]).contains("\"\(pod.ipv4)"), "node\(index + 1) has the pod")
        }

        let known = try s.agents[0].api(.GET, "/v1/cluster/nodes")
        XCTAssertEqual(known.status, 200, "\(known)")
        XCTAssertEqual(known.json?["cluster"]?.boolValue, true)
        XCTAssertEqual(known.json?["self"]?.stringValue, s.cluster.nodes[0].nodeName)
        let listed = known.json?["nodes"]?.arrayValue ?? []
        XCTAssertEqual(listed.map { $0["local"]?.boolValue }, [true, false, false], "\(listed)")
        let entry = try XCTUnwrap(listed.first { $0["name"]?.stringValue == node3.nodeName }, "\(listed)")
        XCTAssertEqual(entry["address"]?.stringValue, node3.underlay?.ipv4)
        XCTAssertEqual(entry["pod-cidrs"]?.arrayValue?.compactMap(\.stringValue), [node3.addressing.ipv4CIDR])
        let table = try s.agents[1].nodectl("node", "list")
        XCTAssertEqual(table.status, 0, table.stderr)
        let lines = table.stdout.split(separator: "\n")
        XCTAssertTrue(lines.first?.hasPrefix("NAME") ?? false, table.stdout)
        XCTAssertTrue(
            lines.dropFirst().first?.hasPrefix("\(s.cluster.nodes[1].nodeName) (local)") ?? false, table.stdout)
        XCTAssertTrue(
            lines.contains { $0.hasPrefix(node3.nodeName) && $0.contains(node3.addressing.ipv4CIDR) }, table.stdout)

        s.agents[2].kill(signal: SIGKILL)
        XCTAssertNotNil(s.agents[2].waitForExit(timeout: 5))
        for index in 0..<2 {
            let agent = s.agents[index]
            try agent.waitForRemoteEndpoints(1, timeout: 12)
            let ipcache = try ipcacheDump(agent)
            XCTAssertFalse(ipcache.contains("\"\(pod.ipv4)"), "node\(index + 1)'s ipcache: \(ipcache)")
            try waitUntil("node\(index + 1) drops its route to node3's pods", timeout: 5) {
                try !agentRoutes(on: s.cluster.nodes[index]).contains(node3.addressing.ipv4CIDR)
            }
            try waitUntil("node\(index + 1) forgets node3", timeout: 5) {
                try !nodeList(agent).contains(node3.nodeName)
            }
        }
        assertAllowedAndDenied(s, "node3 gone")
    }

    /// The routes the agent installed in `node`'s namespace (`proto 78`), as `ip route` prints them.
    private func agentRoutes(on node: Topology) throws -> String {
        try Shell.run(["ip", "-n", node.nodeNetns, "route", "show", "proto", "78"])
    }

    /// `GET /v1/map/na_ipcache` as it came.
    private func ipcacheDump(_ agent: AgentProcess) throws -> String {
        let dump = try agent.api(.GET, "/v1/map/na_ipcache")
        guard dump.status == 200 else { throw AgentHarnessError("GET /v1/map/na_ipcache: \(dump)") }
        return dump.body
    }

    /// `nodectl node list -o json`: the names of the nodes the agent knows.
    private func nodeList(_ agent: AgentProcess) throws -> [String] {
        let result = try agent.nodectl("node", "list", "-o", "json")
        XCTAssertEqual(result.status, 0, result.stderr)
        return (try JSON.parse(result.stdout)["nodes"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
    }

    private func waitUntil(_ what: String, timeout: TimeInterval, _ condition: () throws -> Bool) throws {
        let deadline = Date() + timeout
        repeat {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.1)
        } while Date() < deadline
        throw AgentHarnessError("not within \(timeout) s: \(what)")
    }
}

/// Samples an agent's count of other nodes' pods (`/v1/healthz`) every 50 ms until `stop()`.
private final class RemoteEndpointWatcher: Sendable {
    struct Seen: Sendable, CustomStringConvertible {
        var samples = 0
        var minimum = Int64.max
        var errors: [String] = []
        var description: String { "\(samples) samples, minimum \(minimum), errors \(errors.prefix(3))" }
    }

    private let state = Locked((seen: Seen(), stopping: false))
    private let finished = DispatchSemaphore(value: 0)

    init(_ agent: AgentProcess) {
        Thread { [self] in
            while !state.current.stopping {
                do {
                    let count = try agent.clusterHealth()["remote-endpoints"]?.intValue ?? -1
                    state.withLock {
                        $0.seen.samples += 1
                        $0.seen.minimum = min($0.seen.minimum, count)
                    }
                } catch {
                    state.withLock { $0.seen.errors.append("\(error)") }
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            finished.signal()
        }.start()
    }

    func stop() -> Seen {
        state.withLock { $0.stopping = true }
        finished.wait()
        return state.current.seen
    }
}
