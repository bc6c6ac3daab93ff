import AgentAPI
import Foundation
import Glibc
import XCTest

/// Who can reach the API: the socket is 0660 with the configured group whatever the umask, there is no TCP
/// listener, and every change is logged with the credentials of the process that made it.
final class AccessTests: EndToEndTestCase {
    func testSocketModeGroupNoTCPListenerAndCallersInTheLog() throws {
        let topology = try makeTopology()
        try XCTSkipIf((try? Shell.executablePath("groupadd")) == nil, "needs groupadd")
        let group = "na\(topology.tag)api"
        try Shell.run(["groupadd", group])
        defer { _ = try? Shell.run(["groupdel", group]) }
        let gid = try XCTUnwrap(getgrnam(group)?.pointee.gr_gid)
        let config = "\(Topology.temporaryDirectory)/na\(topology.tag)-config.json"
        try #"{"socket-group": "\#(group)"}"#.write(toFile: config, atomically: true, encoding: .utf8)

        // The agent inherits a umask that would leave the socket unreachable for the group.
        let previous = umask(0o077)
        let agent: AgentProcess
        do {
            defer { umask(previous) }
            agent = try startAgent(in: topology, configFile: config)
        }
        var info = stat()
        XCTAssertEqual(stat(agent.socketPath, &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o660, "mode \(String(info.st_mode & 0o7777, radix: 8))")
        XCTAssertEqual(info.st_uid, 0)
        XCTAssertEqual(info.st_gid, gid)

        // No TCP socket listens in the agent's namespace, and the agent owns no TCP socket at all.
        let pid = try XCTUnwrap(agent.pid)
        for table in ["tcp", "tcp6"] {
            let lines = try String(contentsOfFile: "/proc/\(pid)/net/\(table)", encoding: .utf8)
                .split(separator: "\n").dropFirst()
            let listening = lines.filter { $0.split(separator: " ")[3] == "0A" }
            XCTAssertEqual(listening, [], "listening \(table) sockets in the agent's namespace")
        }
        let listeners = try Shell.run(["nsenter", "--net=\(Netns.path(topology.nodeNetns))", "ss", "-ltnp"])
        XCTAssertFalse(listeners.contains("pid=\(pid),"), listeners)

        // A member of the group (not root) may use the API; its credentials are what the log records.
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: agent.directory)
        let member = try Shell.capture([
            "setpriv", "--reuid=65534", "--regid=\(gid)", "--clear-groups", "curl", "--silent", "--unix-socket",
            agent.socketPath, "-X", "PATCH", "-d", #"{"log-level":"info"}"#, "-o", "/dev/null", "-w", "%{http_code}",
            "http://localhost/v1/config",
        ])
        XCTAssertEqual(member.stdout, "200", "group member: \(member.stderr)")
        // Anyone else is refused by the kernel before the agent sees anything.
        let other = try Shell.capture([
            "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "curl", "--silent", "--unix-socket",
            agent.socketPath, "-o", "/dev/null", "-w", "%{http_code}", "http://localhost/v1/healthz",
        ])
        XCTAssertEqual(other.stdout, "000", "not in the group: no connection")

        // Our own change, made over a connection of this process.
        let client = try KeepAliveClient(socketPath: agent.socketPath)
        let put = try client.send(.PATCH, "/v1/config", ["policy-enforcement": "default"])
        XCTAssertEqual(put.status, 200)
        _ = try client.send(.GET, "/v1/healthz")
        usleep(100_000)
        let log = try String(contentsOfFile: agent.stderrPath, encoding: .utf8).split(separator: "\n")
        let ours = log.filter { $0.contains("PATCH /v1/config 200") && $0.contains("pid=\(getpid())") }
        XCTAssertEqual(ours.count, 1, "the change is logged once with our pid")
        XCTAssertTrue(ours.first?.contains("uid=0") == true && ours.first?.contains("gid=0") == true, "\(ours)")
        let theirs = log.filter { $0.contains("PATCH /v1/config 200") && $0.contains("uid=65534") }
        XCTAssertEqual(theirs.count, 1, "the member's change is logged with its uid")
        XCTAssertTrue(theirs.first?.contains("gid=\(gid)") == true, "\(theirs)")
        XCTAssertFalse(
            log.contains { $0.contains("GET /v1/healthz") && $0.contains("level=info") }, "reads are not logged at info"
        )
    }
}
