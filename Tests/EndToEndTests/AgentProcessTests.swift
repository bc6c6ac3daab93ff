import AgentAPI
import Foundation
import Glibc
import XCTest

/// The agent runner against a stand-in daemon (socat serving a shell script that describes each request), so the
/// runner's own logic is checked independently of the real agent: namespace, health polling, HTTP over the
/// socket, signals, restart, and cleanup.
final class AgentProcessTests: EndToEndTestCase {
    func testRunsTheDaemonInTheNodeNamespaceAndTalksHTTPOverItsSocket() throws {
        let topology = try makeTopology()
        let fake = try FakeDaemon(topology: topology, body: FakeDaemon.serveHTTP)
        let agent = try AgentProcess(topology: topology, binary: fake.binary)

        let health = try agent.api(.GET, "/v1/healthz")
        XCTAssertEqual(health.status, 200, "\(health)")
        let nodeNamespace = try Netns.inode(ofPath: Netns.path(topology.nodeNetns))
        XCTAssertEqual(health.json?["netns"]?.stringValue, "net:[\(nodeNamespace)]", "runs in the node namespace")
        XCTAssertEqual(health.json?["args"]?.stringValue, agent.arguments.joined(separator: " "))

        let body: JSON = ["interface-name": "lxc1", "labels": ["k8s:app=frontend"]]
        let put = try agent.api(.PUT, "/v1/endpoint/7", body)
        XCTAssertEqual(put.json?["method"], "PUT")
        XCTAssertEqual(put.json?["path"], "/v1/endpoint/7")
        XCTAssertEqual(put.json?["body"], body, "the body arrives as sent")

        let missing = try agent.api(.GET, "/v1/missing?labels=k8s:app=x")
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.json?["path"], "/v1/missing?labels=k8s:app=x")

        let nodectl = try agent.nodectl("policy", "import", "-")
        XCTAssertEqual(nodectl.status, 3)
        XCTAssertEqual(nodectl.stdout, "--socket \(agent.socketPath) policy import -\n")
    }

    func testRestartStartsAFreshProcessAndKillIsSeen() throws {
        let topology = try makeTopology()
        let fake = try FakeDaemon(topology: topology, body: FakeDaemon.serveHTTP)
        let agent = try AgentProcess(topology: topology, binary: fake.binary)
        let firstPID = try XCTUnwrap(agent.pid)

        try agent.restart()
        XCTAssertNotEqual(agent.pid, firstPID)
        XCTAssertEqual(try agent.api(.GET, "/v1/healthz").status, 200)
        XCTAssertTrue(
            try String(contentsOfFile: agent.stdoutPath, encoding: .utf8).contains("=== start 2:"),
            "logs of every start are kept")

        agent.kill(signal: SIGKILL)
        XCTAssertEqual(agent.waitForExit(timeout: 5), .signaled(SIGKILL))
        XCTAssertFalse(agent.isRunning)
    }

    func testCleanupRunsTheDaemonsCleanupInTheNodeNamespaceAndRemovesItsFiles() throws {
        let topology = try makeTopology()
        let fake = try FakeDaemon(topology: topology, body: FakeDaemon.serveHTTP)
        let agent = try AgentProcess(topology: topology, binary: fake.binary)
        try FileManager.default.createDirectory(
            atPath: "\(agent.stateDirectory)/endpoints", withIntermediateDirectories: true)

        agent.cleanup()

        XCTAssertFalse(agent.isRunning)
        XCTAssertNotNil(agent.exitStatus)
        let nodeNamespace = try Netns.inode(ofPath: Netns.path(topology.nodeNetns))
        let log = try String(contentsOfFile: fake.cleanupLog, encoding: .utf8)
        XCTAssertEqual(
            log,
            "net:[\(nodeNamespace)] cleanup --socket \(agent.socketPath) --state-dir \(agent.stateDirectory) "
                + "--bpf-root \(agent.bpfRoot) --cgroup-root \(agent.cgroupRoot)\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: agent.directory))
        XCTAssertFalse(FileManager.default.fileExists(atPath: agent.bpfRoot))
        XCTAssertFalse(FileManager.default.fileExists(atPath: agent.cgroupRoot), "the test cgroup is removed")
    }

    func testStartFailsWithTheDaemonsStderrWhenItExitsEarly() throws {
        let topology = try makeTopology()
        let fake = try FakeDaemon(topology: topology, body: "echo 'bpf-root: cannot mount bpffs' >&2\nexit 3")
        XCTAssertThrowsError(try AgentProcess(topology: topology, binary: fake.binary)) { error in
            XCTAssertTrue("\(error)".contains("exited with status 3"), "\(error)")
            XCTAssertTrue("\(error)".contains("bpf-root: cannot mount bpffs"), "\(error)")
        }
    }

    func testStartGivesUpWhenHealthNeverAnswersAndStopUsesSIGTERM() throws {
        let topology = try makeTopology()
        let fake = try FakeDaemon(topology: topology, body: "exec sleep 30")
        let agent = try AgentProcess(topology: topology, binary: fake.binary, start: false)
        let started = Date()
        XCTAssertThrowsError(try agent.start(timeout: 0.5)) { error in
            XCTAssertTrue("\(error)".contains("did not answer /v1/healthz within 0.5 s"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 3)
        XCTAssertEqual(agent.stop(timeout: 5), .signaled(SIGTERM))
    }
}

/// Executable scripts standing in for `nodeagent` and `nodectl`, in a directory carrying the run tag.
private struct FakeDaemon {
    let directory: String
    var binary: String { "\(directory)/nodeagent" }
    var cleanupLog: String { "\(directory)/cleanup.log" }

    /// `body` runs after the options are parsed into $socket; "cleanup" invocations only log themselves.
    init(topology: Topology, body: String) throws {
        try XCTSkipIf((try? Shell.executablePath("socat")) == nil, "the stand-in daemon needs socat")
        directory = "\(Topology.temporaryDirectory)/na\(topology.tag)-fake"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try write(
            "nodeagent",
            """
            #!/bin/bash
            here=$(dirname "$0")
            if [ "$1" = cleanup ]; then
                echo "$(readlink /proc/self/ns/net) $*" >> "$here/cleanup.log"
                exit 0
            fi
            export ARGS="$*"
            while [ $# -gt 0 ]; do
                case "$1" in --socket) socket=$2; shift 2 ;; *) shift ;; esac
            done
            \(body)
            """)
        try write(
            "handler",
            """
            #!/bin/bash
            # Answers one HTTP request with a JSON description of it; /v1/missing answers 404.
            read -r method path _
            length=0
            while IFS= read -r line; do
                line=${line%$'\\r'}
                [ -z "$line" ] && break
                case "${line,,}" in content-length:*) length=${line#*: } ;; esac
            done
            body=null
            if [ "$length" -gt 0 ]; then IFS= read -r -N "$length" body; fi
            status="200 OK"
            case "$path" in /v1/missing*) status="404 Not Found" ;; esac
            netns=$(readlink /proc/self/ns/net)
            reply="{\\"method\\":\\"$method\\",\\"path\\":\\"$path\\",\\"netns\\":\\"$netns\\","
            reply+="\\"args\\":\\"$ARGS\\",\\"body\\":$body}"
            printf 'HTTP/1.1 %s\\r\\nContent-Type: application/json\\r\\n' "$status"
            printf 'Content-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s' "${#reply}" "$reply"
            """)
        try write("nodectl", "#!/bin/bash\necho \"$*\"\nexit 3\n")
    }

    /// Serves HTTP on $socket until terminated (exec, so signals reach socat itself).
    static let serveHTTP = "exec socat UNIX-LISTEN:\"$socket\",fork,unlink-early EXEC:\"$here/handler\""

    private func write(_ name: String, _ text: String) throws {
        let path = "\(directory)/\(name)"
        try (text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        guard chmod(path, 0o755) == 0 else { throw NetnsError("chmod \(path)") }
    }
}
