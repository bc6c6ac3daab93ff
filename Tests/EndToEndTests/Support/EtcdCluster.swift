import Foundation
import Glibc

/// A real etcd cluster (the `etcd` binary) for the cluster mode's tests: each member in its own namespace
/// `na<tag>-etcdN` on the cluster's underlay at host 100+N, bootstrapped statically, with its data directory and
/// log under `/tmp/na<tag>-etcd`. Members can be stopped, killed and started again on their data (they rejoin);
/// the cluster's run stops them all before it deletes the namespaces, and its sweep kills them after a crash.
///
/// The member processes are kept in `processes` behind its lock, which is what makes the class Sendable.
final class EtcdCluster: @unchecked Sendable {
    /// One member's names, addresses and files.
    struct Member: Sendable {
        var name: String
        var netns: String
        var port: UnderlayPort
        var clientURL: String
        var peerURL: String
        var dataDirectory: String
        var logPath: String
    }

    /// Raft timing for a test: a lost leader is replaced within about a second, not etcd's default ten.
    static let heartbeatMilliseconds = 50
    static let electionMilliseconds = 500

    let members: [Member]
    /// `/tmp/na<tag>-etcd`: the data directories and logs.
    let directory: String
    /// Where health checks run from: the underlay namespace, outside every node.
    let observerNetns: String
    let etcdBinary: String
    let etcdctlBinary: String
    private let clusterToken: String
    private let processes: Locked<[Process?]>

    /// The URLs agents use, one per member, in member order.
    var clientEndpoints: [String] { members.map(\.clientURL) }

    /// Creates `memberCount` member namespaces on `cluster`'s underlay (one etcd cluster per cluster), starts every
    /// member and waits until all are healthy. Whatever started is killed when the cluster is destroyed.
    init(members memberCount: Int = 3, on cluster: ClusterTopology, timeout: TimeInterval = 15) throws {
        etcdBinary = try Shell.executablePath("etcd")
        etcdctlBinary = try Shell.executablePath("etcdctl")
        let run = cluster.run
        let directory = try run.temporaryDirectory("etcd")
        self.directory = directory
        observerNetns = cluster.underlay.netns
        clusterToken = "na\(run.tag)"
        members = (1...memberCount).map { number in
            let name = "etcd\(number)"
            let port = cluster.underlay.reserve(host: 100 + number)
            return Member(
                name: name, netns: "na\(run.tag)-\(name)", port: port, clientURL: "http://\(port.ipv4):2379",
                peerURL: "http://\(port.ipv4):2380", dataDirectory: "\(directory)/\(name).data",
                logPath: "\(directory)/\(name).log")
        }
        processes = Locked(Array(repeating: nil, count: memberCount))
        run.onDestroy { [self] in killAll() }
        cluster.addDiagnostics { [self] in
            members.indices.map { "--- log of etcd member \(members[$0].name):\n\(logTail($0, lines: 40))" }
                .joined(separator: "\n")
        }
        for member in members {
            try run.createNamespace(member.netns)
            try member.port.attach(member.netns)
        }
        try startAll()
        try waitHealthy(timeout: timeout)
    }

    /// Whether member `index` (0-based) is running.
    func isRunning(_ index: Int) -> Bool { processes.current[index]?.isRunning ?? false }

    /// The indices of the running members.
    var runningMembers: [Int] { members.indices.filter { isRunning($0) } }

    /// The pid of member `index` while it runs.
    func pid(_ index: Int) -> pid_t? { isRunning(index) ? processes.current[index]?.processIdentifier : nil }

    /// Starts member `index` under `nsenter --net=<its namespace>` on its data directory; does not wait for it
    /// (see `waitHealthy`). A member started again after a stop or kill rejoins with what it had.
    func start(_ index: Int) throws {
        guard !isRunning(index) else { throw AgentHarnessError("etcd member \(members[index].name) already runs") }
        let member = members[index]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Shell.executablePath("nsenter"))
        process.arguments = ["--net=\(Netns.path(member.netns))", etcdBinary] + arguments(member)
        process.standardInput = FileHandle.nullDevice
        let banner = "=== start: \(etcdBinary) \(arguments(member).joined(separator: " "))\n"
        let log = try AgentProcess.appendHandle(member.logPath, banner: banner)
        defer { try? log.close() }
        process.standardOutput = log
        process.standardError = log
        try process.run()
        processes.withLock { $0[index] = process }
    }

    /// Starts every member that is not running.
    func startAll() throws {
        for index in members.indices where !isRunning(index) { try start(index) }
    }

    /// SIGTERM, then SIGKILL if member `index` has not exited after `timeout`.
    func stop(_ index: Int, timeout: TimeInterval = 5) {
        signal(index, SIGTERM)
        if !waitForExit(index, timeout: timeout) { kill(index) }
    }

    /// SIGKILL: the member dies as in a crash, with no chance to hand over leadership.
    func kill(_ index: Int) {
        signal(index, SIGKILL)
        _ = waitForExit(index, timeout: 5)
    }

    /// Stops every member, one after the other: a leader stopping hands its leadership to a running peer first,
    /// which is quick while one runs, but stopped all at once the leader waits for a peer that is going away
    /// until etcd's request timeout (several seconds).
    func stopAll(timeout: TimeInterval = 5) {
        for index in members.indices { stop(index, timeout: timeout) }
    }

    /// SIGKILL to every member: how the run removes them, as nothing of theirs is kept.
    func killAll() {
        for index in members.indices { signal(index, SIGKILL) }
        for index in members.indices { _ = waitForExit(index, timeout: 5) }
    }

    /// Waits until every member in `indices` (by default the running ones) answers `etcdctl endpoint health`,
    /// asked from the underlay namespace: a member is healthy once it serves a quorum read. Throws with the last
    /// answer and the members' log tails when a member exits or `timeout` passes.
    func waitHealthy(members indices: [Int]? = nil, timeout: TimeInterval = 10) throws {
        let indices = indices ?? runningMembers
        let endpoints = indices.map { members[$0].clientURL }
        let deadline = Date() + timeout
        var last = "no member asked"
        while Date() < deadline {
            if let stopped = indices.first(where: { !isRunning($0) }) {
                throw AgentHarnessError(
                    "etcd member \(members[stopped].name) is not running; log:\n\(logTail(stopped))")
            }
            let result = try etcdctl(["endpoint", "health"], from: observerNetns, endpoints: endpoints)
            if result.succeeded { return }
            last = (result.stdout + result.stderr).trimmingCharacters(in: .whitespacesAndNewlines)
            usleep(100_000)
        }
        let logs = indices.map { "--- \(members[$0].name):\n\(logTail($0))" }.joined(separator: "\n")
        throw AgentHarnessError("etcd not healthy within \(timeout) s (last: \(last)); logs:\n\(logs)")
    }

    /// Runs `etcdctl <arguments>` (API v3) inside namespace `netns` against `endpoints` (all members by
    /// default), with a one-second dial timeout and `commandTimeout` for the request; returns whatever it says.
    func etcdctl(
        _ arguments: [String], from netns: String, endpoints: [String]? = nil, commandTimeout: TimeInterval = 2
    ) throws -> CommandResult {
        let milliseconds = Int(commandTimeout * 1000)
        let command =
            [
                "nsenter", "--net=\(Netns.path(netns))", "env", "ETCDCTL_API=3", etcdctlBinary,
                "--endpoints=\((endpoints ?? clientEndpoints).joined(separator: ","))", "--dial-timeout=1s",
                "--command-timeout=\(milliseconds)ms",
            ] + arguments
        return try Shell.capture(command, timeout: commandTimeout + 5)
    }

    /// Writes `key` from namespace `netns`; throws with etcdctl's complaint when the write fails.
    func put(_ key: String, _ value: String, from netns: String, endpoints: [String]? = nil) throws {
        let result = try etcdctl(["put", key, value], from: netns, endpoints: endpoints)
        guard result.succeeded else { throw AgentHarnessError("etcdctl put \(key) failed: \(result.stderr)") }
    }

    /// Reads `key` (a linearizable read) from namespace `netns`: nil when it does not exist; throws when the
    /// read fails.
    func get(_ key: String, from netns: String, endpoints: [String]? = nil) throws -> String? {
        let result = try etcdctl(["get", key, "--print-value-only"], from: netns, endpoints: endpoints)
        guard result.succeeded else { throw AgentHarnessError("etcdctl get \(key) failed: \(result.stderr)") }
        let value = result.stdout.hasSuffix("\n") ? String(result.stdout.dropLast()) : result.stdout
        return result.stdout.isEmpty ? nil : value
    }

    /// The last `lines` lines of member `index`'s log.
    func logTail(_ index: Int, lines: Int = 20) -> String {
        let text = (try? String(contentsOfFile: members[index].logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    // MARK: - Building blocks

    private func arguments(_ member: Member) -> [String] {
        let initialCluster = members.map { "\($0.name)=\($0.peerURL)" }.joined(separator: ",")
        return [
            "--name", member.name, "--data-dir", member.dataDirectory,
            "--listen-client-urls", member.clientURL, "--advertise-client-urls", member.clientURL,
            "--listen-peer-urls", member.peerURL, "--initial-advertise-peer-urls", member.peerURL,
            "--initial-cluster", initialCluster, "--initial-cluster-token", clusterToken,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", "\(EtcdCluster.heartbeatMilliseconds)",
            "--election-timeout", "\(EtcdCluster.electionMilliseconds)",
            "--logger", "zap", "--log-outputs", "stderr",
        ]
    }

    private func signal(_ index: Int, _ signal: Int32) {
        if let pid = pid(index) { Glibc.kill(pid, signal) }
    }

    /// Whether member `index` is down within `timeout`.
    private func waitForExit(_ index: Int, timeout: TimeInterval) -> Bool {
        let deadline = Date() + timeout
        while isRunning(index) && Date() < deadline { usleep(20_000) }
        return !isRunning(index)
    }
}
