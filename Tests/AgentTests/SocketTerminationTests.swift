import AgentAPI
import DatapathCore
import Foundation
import Glibc
import XCTest

@testable import Agent

/// Connections to backends that left a service end (sock_diag destroy) instead of living on or, for connected
/// UDP sockets, sending into the void; connections that did not go through the service are left alone.
final class SocketTerminationTests: SocketLoadBalancerTestCase {
    private var scriptPath = ""

    override var podCounts: (backends: Int, clients: Int) { (2, 1) }

    override func setUpWithError() throws {
        try super.setUpWithError()
        scriptPath = pods.scripts.appendingPathComponent("session.py").path
        try Self.sessionScript.write(toFile: scriptPath, atomically: true, encoding: .utf8)
    }

    private func service(_ frontend: String, proto: UInt8, backends: [Int]) -> LoadBalancedService {
        let port = proto == IPProtocol.tcp ? ServicePods.tcpPort : ServicePods.udpPort
        return LoadBalancedService(
            id: 9, frontend: ServiceFrontend(address: IPAddress(frontend)!, port: port, proto: proto),
            backends: backends.map { ServiceBackend(address: IPAddress(pods.ipv4($0))!, port: port) })
    }

    private func frontend(_ last: Int) -> String { "10.96.\(Int(pods.tag.suffix(2), radix: 16)!).\(last)" }

    /// A long-lived client socket in the client pod and the test's cgroup.
    private func session(_ proto: String, _ address: String, _ port: UInt16) throws -> Session {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        process.arguments = [
            "--net=/var/run/netns/\(pods.clientNetns)", "--", "/bin/sh", "-c",
            "echo $$ > \(pods.cgroup)/cgroup.procs && exec /usr/bin/python3 \"$@\"", "sh", scriptPath, proto, address,
            String(port),
        ]
        return try Session(process)
    }

    func testAConnectedUDPSocketToARemovedBackendIsEndedAndReconnectsElsewhere() throws {
        let address = frontend(21)
        let udp = service(address, proto: IPProtocol.udp, backends: [1, 2])
        try datapath.apply(udp)
        let client = try session("udp", address, ServicePods.udpPort)
        defer { client.close() }
        let first = try client.send("ask")
        XCTAssertTrue(["b1", "b2"].contains(first), first)
        let index = Int(first.dropFirst())!
        let other = 3 - index
        // A socket connected to the same backend directly, not through the service, is not the service's.
        let direct = try session("udp", pods.ipv4(index), ServicePods.udpPort)
        defer { direct.close() }
        XCTAssertEqual(try direct.send("ask"), first)

        try datapath.apply(service(address, proto: IPProtocol.udp, backends: [other]))
        let removed = udp.backends.filter { $0.address == IPAddress(pods.ipv4(index))! }
        XCTAssertEqual(try datapath.terminateConnections(to: removed, of: udp), 1)
        let failed = try client.send("ask")
        XCTAssertTrue(failed.hasPrefix("E"), "the ended socket reports an error, got \(failed)")
        XCTAssertEqual(try client.send("reconnect"), "connected")
        XCTAssertEqual(try client.send("ask"), "b\(other)", "a new socket goes to the remaining backend")
        XCTAssertEqual(try direct.send("ask"), first, "the direct socket was left alone")
    }

    func testATCPConnectionToARemovedBackendEndsWhileOthersGoOn() throws {
        let address = frontend(22)
        let tcp = service(address, proto: IPProtocol.tcp, backends: [1, 2])
        try datapath.apply(tcp)
        // Connections until both backends hold one (the random choice may give either several first).
        var sessions: [String: Session] = [:]
        var held: [String: Int] = [:]
        var all: [Session] = []
        defer { all.forEach { $0.close() } }
        for _ in 0..<40 where sessions.count < 2 {
            let client = try session("tcp", address, ServicePods.tcpPort)
            all.append(client)
            let name = try client.send("ask")
            sessions[name] = client
            held[name, default: 0] += 1
        }
        XCTAssertEqual(Set(sessions.keys), ["b1", "b2"])

        try datapath.apply(service(address, proto: IPProtocol.tcp, backends: [2]))
        XCTAssertEqual(
            try datapath.terminateConnections(to: [tcp.backends[0]], of: tcp), held["b1"],
            "every connection to the removed backend ends, and only those")
        let ended = try sessions["b1"]!.send("ask")
        XCTAssertTrue(ended.hasPrefix("E"), "the connection to the removed backend ended, got \(ended)")
        XCTAssertEqual(try sessions["b2"]!.send("ask"), "b2", "the other backend's connection goes on")
        XCTAssertEqual(
            try datapath.terminateConnections(to: [tcp.backends[0]], of: tcp), 0,
            "nothing is left to end the second time")
    }

    /// `PROTO ADDR PORT`: connects, prints "connected", then for each stdin line: "reconnect" opens a new socket;
    /// anything else sends a query and prints the answering backend's name, "EOF", or the error's name.
    static let sessionScript = """
        import errno, socket, sys
        proto, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM

        def connect():
            s = socket.socket(family, kind)
            s.settimeout(3)
            s.connect((addr, port))
            if kind == socket.SOCK_STREAM:
                greeting = b""
                while not greeting.endswith(b"\\n"):
                    greeting += s.recv(1)
            return s

        s = connect()
        print("connected", flush=True)
        for line in sys.stdin:
            if line.strip() == "reconnect":
                s.close()
                s = connect()
                print("connected", flush=True)
                continue
            try:
                s.send(b"q\\n")
                data = s.recv(256)
                print(data.decode().split(":")[0].strip() if data else "EOF", flush=True)
            except OSError as e:
                print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
        """
}

/// A session: a `LineClient` that has printed "connected".
private final class Session {
    private let client: LineClient

    init(_ process: Process) throws {
        client = try LineClient(process)
        let greeting = try client.readLine()
        guard greeting == "connected" else { throw ScratchError("the session did not connect: \(greeting)") }
    }

    func send(_ text: String) throws -> String { try client.send(text) }

    func close() { client.close() }
}
