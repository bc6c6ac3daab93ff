import Foundation
import Glibc

/// Pods for socket load balancing tests: a node namespace routing between client pods and backend pods (each a
/// namespace on a veth pair, dual stack), a cgroup v2 directory of the test's own under the machine's cgroup v2
/// mount, and clients that run inside both: a client pod's network namespace and that cgroup, where the load
/// balancer's hooks are attached. Backends run a Python server answering with their name: TCP sends the name on
/// accept and echoes lines prefixed with it, UDP answers every datagram with the name.
///
/// Everything carries a random tag and `destroy()` removes it all (servers, namespaces, the cgroup).
final class ServicePods: @unchecked Sendable {  // mutable state only from the test's thread
    let tag = String(format: "%04x", UInt32.random(in: 0...0xffff))
    let cgroup: String
    let scripts: URL
    private(set) var namespaces: [String] = []
    private var servers: [Process] = []
    static let tcpPort: UInt16 = 8080
    static let udpPort: UInt16 = 5353

    var nodeNetns: String { "nasl\(tag)-n" }
    var clientNetns: String { "nasl\(tag)-c" }
    /// Client pods after the first (`clients` above 1): "-c2", "-c3", ...
    func clientNetns(_ number: Int) -> String { number == 1 ? clientNetns : "nasl\(tag)-c\(number)" }
    func backendNetns(_ index: Int) -> String { "nasl\(tag)-b\(index)" }
    /// Pod addresses: the first client is index 0, backends 1..., further clients 200 + their number.
    func ipv4(_ index: Int) -> String { "10.250.0.\(10 + index)" }
    func ipv6(_ index: Int) -> String { "fd00:250::\(10 + index)" }

    init(backends: Int, clients: Int = 1) throws {
        guard let mount = Self.cgroup2Mount() else { throw ScratchError("no cgroup v2 mount") }
        cgroup = "\(mount)/nodeagent-test-\(tag)"
        scripts = FileManager.default.temporaryDirectory.appendingPathComponent("nodeagent-sock-\(tag)")
        do {
            try FileManager.default.createDirectory(atPath: cgroup, withIntermediateDirectories: false)
            try FileManager.default.createDirectory(at: scripts, withIntermediateDirectories: true)
            try Self.serverScript.write(
                to: scripts.appendingPathComponent("server.py"), atomically: true, encoding: .utf8)
            try Self.clientScript.write(
                to: scripts.appendingPathComponent("client.py"), atomically: true, encoding: .utf8)
            try addNamespace(nodeNetns)
            try ScratchNetns.ip(["netns", "exec", nodeNetns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            try ScratchNetns.ip(["netns", "exec", nodeNetns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
            try ScratchNetns.ip(["-n", nodeNetns, "link", "set", "lo", "up"])
            try addPod(clientNetns, index: 0)
            for number in stride(from: 2, through: clients, by: 1) {
                try addPod(clientNetns(number), index: 200 + number)
            }
            for index in 1...backends {
                try addPod(backendNetns(index), index: index)
                try startServer(index)
            }
            try waitForServers(backends)
        } catch {
            destroy()
            throw error
        }
    }

    /// The cgroup v2 mount: /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid).
    static func cgroup2Mount() -> String? {
        guard let mounts = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return nil }
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 2, fields[2] == "cgroup2" { return String(fields[1]) }
        }
        return nil
    }

    private func addNamespace(_ name: String) throws {
        try ScratchNetns.ip(["netns", "add", name])
        namespaces.append(name)
    }

    private func addPod(_ netns: String, index: Int) throws {
        try addNamespace(netns)
        let host = "sl\(tag)h\(index)"
        try ScratchNetns.ip([
            "-n", nodeNetns, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ])
        for command in [
            "link set lo up", "link set eth0 up", "address add \(ipv4(index))/32 dev eth0",
            "route add 10.250.0.1 dev eth0 scope link", "route add default via 10.250.0.1 dev eth0",
            "address add \(ipv6(index))/128 dev eth0 nodad", "route add fd00:250::1 dev eth0",
            "route add ::/0 via fd00:250::1 dev eth0",
        ] {
            try ScratchNetns.ip(["-n", netns] + command.split(separator: " ").map(String.init))
        }
        for command in [
            "link set \(host) up", "address add 10.250.0.1/32 dev \(host)", "route add \(ipv4(index))/32 dev \(host)",
            "address add fd00:250::1/128 dev \(host) nodad", "route add \(ipv6(index))/128 dev \(host)",
        ] {
            try ScratchNetns.ip(["-n", nodeNetns] + command.split(separator: " ").map(String.init))
        }
    }

    private func startServer(_ index: Int) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = [
            "netns", "exec", backendNetns(index), "/usr/bin/python3", scripts.appendingPathComponent("server.py").path,
            "b\(index)", String(Self.tcpPort), String(Self.udpPort),
            scripts.appendingPathComponent("b\(index).ready").path,
        ]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        servers.append(process)
    }

    private func waitForServers(_ count: Int) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let ready = (1...count).allSatisfy {
                FileManager.default.fileExists(atPath: scripts.appendingPathComponent("b\($0).ready").path)
            }
            if ready { return }
            usleep(50_000)
        }
        throw ScratchError("backend servers did not start")
    }

    /// Runs the client script with `arguments` in a pod (the first client unless `netns` names another, such as a
    /// backend's) and the test's cgroup; its JSON answer.
    func client(_ arguments: [String], netns: String? = nil) throws -> [String: Any] {
        let process = clientProcess(arguments, netns: netns)
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
            let answer = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw ScratchError(
                "client \(arguments) exited \(process.terminationStatus): \(String(decoding: data, as: UTF8.self))")
        }
        return answer
    }

    /// The client script as a process not yet started, joining the cgroup before Python runs.
    func clientProcess(_ arguments: [String], netns: String? = nil) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        process.arguments =
            [
                "--net=/var/run/netns/\(netns ?? clientNetns)", "--", "/bin/sh", "-c",
                "echo $$ > \(cgroup)/cgroup.procs && exec /usr/bin/python3 \"$@\"", "sh",
                scripts.appendingPathComponent("client.py").path,
            ] + arguments
        return process
    }

    func destroy() {
        for server in servers where server.isRunning {
            server.terminate()
            server.waitUntilExit()
        }
        servers = []
        for name in namespaces.reversed() { _ = try? ScratchNetns.ip(["netns", "delete", name]) }
        namespaces = []
        // A cgroup goes once its last process has left; clients are gone when their test returns.
        for _ in 0..<50 where FileManager.default.fileExists(atPath: cgroup) {
            if rmdir(cgroup) == 0 || errno == ENOENT { break }
            usleep(100_000)
        }
        try? FileManager.default.removeItem(at: scripts)
    }

    static let serverScript = """
        import socket, sys, threading
        name, tcp_port, udp_port, ready = sys.argv[1].encode(), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

        def serve(conn):
            try:
                conn.sendall(name + b"\\n")
                while True:
                    data = conn.recv(256)
                    if not data:
                        break
                    conn.sendall(name + b":" + data)
            finally:
                conn.close()

        def udp(sock):
            while True:
                data, peer = sock.recvfrom(256)
                sock.sendto(name, peer)

        def dual(kind):
            sock = socket.socket(socket.AF_INET6, kind)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            return sock

        tcp = dual(socket.SOCK_STREAM)
        tcp.bind(("::", tcp_port))
        tcp.listen(1024)
        u = dual(socket.SOCK_DGRAM)
        u.bind(("::", udp_port))
        threading.Thread(target=udp, args=(u,), daemon=True).start()
        open(ready, "w").close()
        while True:
            conn, _ = tcp.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
        """

    /// Modes: `tcp ADDR PORT N` (N connections: backend names, peers getpeername showed, errors), `udp ADDR PORT
    /// N` (N datagrams on an unconnected socket: names and reply sources; then one on a connected socket),
    /// `refuse ADDR PORT` (one TCP connect, one UDP send, one request on a connected UDP socket: errno names and
    /// milliseconds), `hold ADDR PORT` (one
    /// connection: prints the backend, then sends each stdin line and prints the answer).
    static let clientScript = """
        import errno, json, socket, sys, time
        mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET

        def peer(sock):
            p = sock.getpeername()
            return "%s:%d" % (p[0], p[1])

        def err(e):
            return errno.errorcode.get(e.errno, str(e.errno))

        if mode == "tcp":
            names, peers, errors = {}, {}, {}
            for _ in range(int(sys.argv[4])):
                s = socket.socket(family, socket.SOCK_STREAM)
                s.settimeout(5)
                try:
                    s.connect((addr, port))
                    name = s.makefile("rb").readline().decode().strip()
                    names[name] = names.get(name, 0) + 1
                    p = peer(s)
                    peers[p] = peers.get(p, 0) + 1
                except OSError as e:
                    errors[err(e)] = errors.get(err(e), 0) + 1
                finally:
                    s.close()
            print(json.dumps({"names": names, "peers": peers, "errors": errors}))
        elif mode == "udp":
            names, sources = {}, {}
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.settimeout(2)
            for _ in range(int(sys.argv[4])):
                s.sendto(b"q", (addr, port))
                data, source = s.recvfrom(256)
                names[data.decode()] = names.get(data.decode(), 0) + 1
                key = "%s:%d" % (source[0], source[1])
                sources[key] = sources.get(key, 0) + 1
            c = socket.socket(family, socket.SOCK_DGRAM)
            c.settimeout(2)
            c.connect((addr, port))
            c.send(b"q")
            connected = {"name": c.recv(256).decode(), "peer": peer(c)}
            print(json.dumps({"names": names, "sources": sources, "connected": connected}))
        elif mode == "refuse":
            out = {}
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(5)
            start = time.monotonic()
            try:
                s.connect((addr, port))
                out["tcp"] = "connected"
            except OSError as e:
                out["tcp"] = err(e)
            out["tcp_ms"] = (time.monotonic() - start) * 1000
            u = socket.socket(family, socket.SOCK_DGRAM)
            try:
                u.sendto(b"q", (addr, port))
                out["udp"] = "sent"
            except OSError as e:
                out["udp"] = err(e)
            c = socket.socket(family, socket.SOCK_DGRAM)
            c.settimeout(1)
            start = time.monotonic()
            try:
                c.connect((addr, port))
                c.send(b"q")
                c.recv(256)
                out["udp_connected"] = "answered"
            except socket.timeout:
                out["udp_connected"] = "timeout"
            except OSError as e:
                out["udp_connected"] = err(e)
            out["udp_connected_ms"] = (time.monotonic() - start) * 1000
            print(json.dumps(out))
        elif mode == "hold":
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect((addr, port))
            f = s.makefile("rb")
            print(f.readline().decode().strip(), flush=True)
            for line in sys.stdin:
                s.sendall(line.encode())
                print(f.readline().decode().strip(), flush=True)
        """
}
