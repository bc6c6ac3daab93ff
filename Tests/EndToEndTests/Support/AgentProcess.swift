import AgentAPI
import Foundation
import Glibc

/// How an agent process ended.
enum ProcessExit: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}

/// The agent daemon under test, running inside a topology's node namespace with its own socket, state directory,
/// BPF pin root and cgroup v2 directory for the socket load balancer (all carrying the run tag), its output
/// appended to `stdout.log` / `stderr.log` in its directory. The topology stops it and removes its files, pins and
/// cgroup before deleting the namespaces.
///
/// The running process is kept in `state` behind its lock, which is what makes the class Sendable.
final class AgentProcess: @unchecked Sendable {
    let binary: String
    let nodectlBinary: String?
    let nodeNetns: String
    /// `/tmp/na<tag>-agent<N>`: holds the socket, the state directory and the logs.
    let directory: String
    let socketPath: String
    let stateDirectory: String
    let bpfRoot: String
    /// `<cgroup v2 mount>/na<tag>-agent<N>`, the agent's `--cgroup-root`: only processes put there (see
    /// `runInPod`) have their sockets translated by its services.
    let cgroupRoot: String
    let stdoutPath: String
    let stderrPath: String
    let configFile: String?
    let extraArguments: [String]

    private struct State {
        var process: Process?
        var starts = 0
        var cleanedUp = false
    }
    private let state = Locked(State())
    private static let counter = Locked(0)

    /// Prepares an agent for `topology` and, unless `start` is false, starts it and waits until it is healthy.
    /// `binary` defaults to the `nodeagent` built next to the test bundle.
    init(
        topology: Topology, binary: String? = nil, configFile: String? = nil, extraArguments: [String] = [],
        start: Bool = true
    ) throws {
        guard let binary = binary ?? AgentProcess.locate("nodeagent") else {
            throw AgentHarnessError("no nodeagent binary found in \(AgentProcess.searchDirectories())")
        }
        let index = AgentProcess.counter.withLock { counter -> Int in
            counter += 1
            return counter
        }
        self.binary = binary
        nodectlBinary = AgentProcess.locate("nodectl", near: binary)
        nodeNetns = topology.nodeNetns
        directory = "\(Topology.temporaryDirectory)/na\(topology.tag)-agent\(index)"
        socketPath = "\(directory)/agent.sock"
        stateDirectory = "\(directory)/state"
        bpfRoot = "\(Topology.bpfDirectory)/na-test-\(topology.tag)" + (index == 1 ? "" : "-\(index)")
        stdoutPath = "\(directory)/stdout.log"
        stderrPath = "\(directory)/stderr.log"
        self.configFile = configFile
        self.extraArguments = extraArguments
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        // Created here: the agent mounts cgroup v2 on a --cgroup-root that is not a cgroup directory yet.
        cgroupRoot = try TestCgroup.create("na\(topology.tag)-agent\(index)")
        topology.onDestroy { [self] in cleanup() }
        if start { try self.start() }
    }

    /// The daemon's command line after the binary.
    var arguments: [String] { locationArguments + extraArguments }

    /// Where this agent keeps things; `cleanup` gets them too, so it never falls back to the default paths.
    private var locationArguments: [String] {
        ["--socket", socketPath, "--state-dir", stateDirectory, "--bpf-root", bpfRoot, "--cgroup-root", cgroupRoot]
            + (configFile.map { ["--config", $0] } ?? [])
    }

    var pid: pid_t? { state.current.process.map { $0.processIdentifier } }

    var isRunning: Bool { state.current.process?.isRunning ?? false }

    /// How long a start may take by default: 10 s, or NODEAGENT_AGENT_START_TIMEOUT seconds where the machine is
    /// much slower (scripts/kernel-matrix.sh's emulated guests load the BPF object in about 13 s).
    static let defaultStartTimeout: TimeInterval =
        ProcessInfo.processInfo.environment["NODEAGENT_AGENT_START_TIMEOUT"].flatMap { TimeInterval($0) } ?? 10

    /// Starts the daemon under `nsenter --net=<node namespace>`, inside its cgroup root as an agent on a node is
    /// inside the whole hierarchy (its L7 self-test needs its own sockets under the sockops program), and waits
    /// until `GET /v1/healthz` answers 200; throws with the tail of its stderr when it exits first or does not
    /// answer within `timeout`.
    func start(timeout: TimeInterval = AgentProcess.defaultStartTimeout) throws {
        guard !isRunning else { throw AgentHarnessError("agent already running (pid \(pid ?? 0))") }
        let starts = state.withLock { state -> Int in
            state.starts += 1
            return state.starts
        }
        let process = Process()
        let command = TestCgroup.command([binary] + arguments, netns: nodeNetns, cgroup: cgroupRoot)
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardInput = FileHandle.nullDevice
        let banner = "=== start \(starts): \(binary) \(arguments.joined(separator: " "))\n"
        let out = try AgentProcess.appendHandle(stdoutPath, banner: banner)
        let err = try AgentProcess.appendHandle(stderrPath, banner: banner)
        defer {
            try? out.close()
            try? err.close()
        }
        process.standardOutput = out
        process.standardError = err
        try process.run()
        state.withLock { $0.process = process }
        try waitUntilHealthy(timeout: timeout)
    }

    /// Polls `GET /v1/healthz` until it answers 200.
    func waitUntilHealthy(timeout: TimeInterval = AgentProcess.defaultStartTimeout) throws {
        let deadline = Date() + timeout
        var last = "no answer"
        while Date() < deadline {
            guard let process = state.current.process, process.isRunning else {
                throw AgentHarnessError(
                    "agent \(exitStatus.map { "\($0)" } ?? "is not running") before answering /v1/healthz; "
                        + "stderr:\n\(stderrTail())")
            }
            if FileManager.default.fileExists(atPath: socketPath) {
                do {
                    let health = try api(.GET, "/v1/healthz", timeout: 2)
                    if health.status == 200 { return }
                    last = "status \(health.status): \(health.body)"
                } catch {
                    last = "\(error)"
                }
            }
            usleep(50_000)
        }
        throw AgentHarnessError(
            "agent did not answer /v1/healthz within \(timeout) s (last: \(last)); stderr:\n\(stderrTail())")
    }

    /// Sends `signal` to the agent (SIGKILL simulates a crash).
    func kill(signal: Int32) {
        if let pid, isRunning { Glibc.kill(pid, signal) }
    }

    /// Waits up to `timeout` for the agent to exit; nil if it is still running.
    @discardableResult
    func waitForExit(timeout: TimeInterval = 10) -> ProcessExit? {
        let deadline = Date() + timeout
        while isRunning && Date() < deadline { usleep(20_000) }
        return exitStatus
    }

    /// How the last run ended; nil while it runs or before it started.
    var exitStatus: ProcessExit? {
        guard let process = state.current.process, !process.isRunning else { return nil }
        return process.terminationReason == .exit
            ? .exited(process.terminationStatus) : .signaled(process.terminationStatus)
    }

    /// SIGTERM, then SIGKILL if it has not exited after `timeout`. Returns how it ended (nil if never started).
    @discardableResult
    func stop(timeout: TimeInterval = 10) -> ProcessExit? {
        guard state.current.process != nil else { return nil }
        kill(signal: SIGTERM)
        if let exit = waitForExit(timeout: timeout) { return exit }
        kill(signal: SIGKILL)
        return waitForExit(timeout: 5)
    }

    /// Stops the agent (if running) and starts it again with the same socket, state directory and pins.
    func restart(timeout: TimeInterval = 10) throws {
        stop()
        try start(timeout: timeout)
    }

    /// Stops the agent, lets it remove its datapath (`nodeagent cleanup` with the same socket, state directory,
    /// pin root and cgroup root, inside the node namespace), then removes the pin root, the cgroup (killing what
    /// is left in it) and the agent's directory whatever that did. Runs once.
    func cleanup() {
        let first = state.withLock { state -> Bool in
            defer { state.cleanedUp = true }
            return !state.cleanedUp
        }
        guard first else { return }
        stop()
        if Netns.exists(nodeNetns) {
            // Older binaries may not know the subcommand; the removal below covers them.
            _ = try? Shell.capture(
                ["nsenter", "--net=\(Netns.path(nodeNetns))", binary, "cleanup"] + locationArguments, timeout: 10)
        }
        try? FileManager.default.removeItem(atPath: bpfRoot)
        TestCgroup.remove(cgroupRoot)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// `arguments` run to completion inside `netns` and this agent's cgroup, where its services translate.
    func runInPod(_ arguments: [String], netns: String, input: String? = nil, timeout: TimeInterval = 30) throws
        -> CommandResult
    {
        try Shell.capture(
            TestCgroup.command(arguments, netns: netns, cgroup: cgroupRoot), input: input, timeout: timeout)
    }

    /// The last `lines` lines of the agent's stderr.
    func stderrTail(lines: Int = 40) -> String {
        let text = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    // MARK: - Binaries

    /// Where built products are looked for: `$NODEAGENT_BUILD_DIR`, the directory of the running test bundle,
    /// and `.build/debug` of the package this file belongs to.
    static func searchDirectories() -> [String] {
        var directories: [String] = []
        if let directory = ProcessInfo.processInfo.environment["NODEAGENT_BUILD_DIR"] { directories.append(directory) }
        for path in [CommandLine.arguments.first, Bundle.main.executablePath, Bundle.main.bundlePath].compactMap({ $0 })
        {
            let url = URL(fileURLWithPath: path).resolvingSymlinksInPath()
            var directory = url.deletingLastPathComponent()
            // On Darwin the bundle's executable sits in <bundle>.xctest/Contents/MacOS.
            while directory.path.contains(".xctest") { directory = directory.deletingLastPathComponent() }
            directories.append(directory.path)
        }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        directories.append(packageRoot.appendingPathComponent(".build/debug").path)
        var seen = Set<String>()
        return directories.filter { seen.insert($0).inserted }
    }

    /// The built executable `name`, preferring the directory of `near` when given.
    static func locate(_ name: String, near sibling: String? = nil) -> String? {
        let preferred = sibling.map { [URL(fileURLWithPath: $0).deletingLastPathComponent().path] } ?? []
        for directory in preferred + searchDirectories() {
            let candidate = "\(directory)/\(name)"
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
                FileManager.default.isExecutableFile(atPath: candidate)
            {
                return candidate
            }
        }
        return nil
    }

    /// A handle appending to the log at `path` (created if missing), after writing `banner` to mark a new start.
    static func appendHandle(_ path: String, banner: String) throws -> FileHandle {
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw AgentHarnessError("cannot open \(path) for writing")
        }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(banner.utf8))
        return handle
    }
}

/// The harness could not do what a test asked (binary missing, agent not healthy, bad answer).
struct AgentHarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
