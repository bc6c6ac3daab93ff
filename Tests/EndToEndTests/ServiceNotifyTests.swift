import AgentAPI
import Foundation
import Glibc
import XCTest

/// The agent under a `Type=notify` unit, with the test as the service manager: `$NOTIFY_SOCKET` names a datagram
/// socket the test owns. READY=1 must arrive only once the API answers with the restored state, STOPPING=1 when
/// SIGTERM starts the shutdown.
final class ServiceNotifyTests: EndToEndTestCase {
    func testReadyComesOnceTheAPIServesRestoredStateAndStoppingOnTerm() throws {
        guard let binary = AgentProcess.locate("nodeagent") else { throw XCTSkip("nodeagent binary not built") }
        let topology = try makeTopology()
        let directory = "\(Topology.temporaryDirectory)/na\(topology.tag)-notify"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let manager = try NotifySocket(path: "\(directory)/notify.sock")
        topology.onDestroy {
            manager.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
        let wrapper = try DeployFiles.wrapper(
            at: "\(directory)/agent.sh", "env NOTIFY_SOCKET=\(manager.path) \(binary)")
        let pod = try topology.addPod(namespace: "default", name: "web", dualStack: false)

        let agent = try AgentProcess(topology: topology, binary: wrapper)
        let first = try XCTUnwrap(manager.waitFor("READY=1", timeout: 5), "no READY=1 from the first start")
        XCTAssertEqual(first.before, [], "nothing before READY=1")
        XCTAssertTrue(first.match.contains { $0.hasPrefix("STATUS=serving on ") }, "\(first.match)")
        try agent.registerEndpoint(id: 42, pod: pod, labels: ["k8s:app=web"])

        XCTAssertEqual(agent.stop(), .exited(0))
        let stopping = try XCTUnwrap(manager.waitFor("STOPPING=1", timeout: 2), "no STOPPING=1 on SIGTERM")
        XCTAssertEqual(stopping.before, [])

        // Restart. The moment READY=1 arrives the agent is frozen (SIGSTOP), so whatever it had not done before
        // sending it stays undone: its API socket must already listen. Restoring comes before listening, so the
        // endpoint from before the restart must be listed once it runs again.
        let seen = Locked<(message: [String]?, listening: Bool, status: Int?, ids: [Int64])>((nil, false, nil, []))
        let received = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let message = manager.waitFor("READY=1", timeout: 15)?.match
            var listening = false
            var status: Int?
            var ids: [Int64] = []
            if message != nil, let pid = agent.pid {
                kill(pid, SIGSTOP)
                listening = Self.acceptsConnections(agent.socketPath)
                kill(pid, SIGCONT)
                if let answer = try? agent.api(.GET, "/v1/endpoint", timeout: 2) {
                    status = answer.status
                    ids = answer.json?.arrayValue?.compactMap { $0["id"]?.intValue } ?? []
                }
            }
            seen.withLock { $0 = (message, listening, status, ids) }
            received.signal()
        }
        try agent.start(timeout: 15)
        XCTAssertEqual(received.wait(timeout: .now() + 20), .success)
        let ready = seen.current
        XCTAssertNotNil(ready.message, "no READY=1 after the restart")
        XCTAssertTrue(ready.listening, "the API socket listens by the time READY=1 arrives")
        XCTAssertEqual(ready.status, 200)
        XCTAssertEqual(ready.ids, [42], "the endpoint from before the restart is listed")

        XCTAssertEqual(agent.stop(), .exited(0))
        XCTAssertNotNil(manager.waitFor("STOPPING=1", timeout: 2), "no STOPPING=1 on the second SIGTERM")
    }

    /// Whether a stream connection to the Unix socket at `path` is accepted (queued by the kernel: the process
    /// behind it may be stopped).
    private static func acceptsConnections(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8) + [0]
        guard bytes.count <= MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}
