import Foundation
import Glibc

/// Pods for the kernel's HTTP enforcement: a node namespace routing between a server pod and a client pod (each a
/// namespace on a veth pair), a cgroup v2 directory of the test's own where the sockops program attaches, and a
/// Python HTTP/1.1 server (keep-alive) running in the server pod and that cgroup, which logs every request it reads.
/// Clients are Python too, in the client pod, sending exact bytes (slowly, pipelined, oversized) and reading the
/// answers.
///
/// Everything carries a random tag and `destroy()` removes it all (server, namespaces, cgroup, scripts).
final class L7Pods: @unchecked Sendable {  // mutable state only from the test's thread
    let tag = String(format: "%04x", UInt32.random(in: 0...0xffff))
    let cgroup: String
    let scripts: URL
    let port: UInt16 = 8080
    private var namespaces: [String] = []
    private var server: Process?

    var nodeNetns: String { "nal7\(tag)-n" }
    var serverNetns: String { "nal7\(tag)-s" }
    var clientNetns: String { "nal7\(tag)-c" }
    private var subnet: String { "10.251.\(Int(tag.suffix(2), radix: 16)!)" }
    var serverIP: String { "\(subnet).10" }
    var clientIP: String { "\(subnet).11" }
    private var subnet6: String { "fd00:251:\(tag)" }
    var serverIPv6: String { "\(subnet6)::10" }
    var clientIPv6: String { "\(subnet6)::11" }
    var accessLog: URL { scripts.appendingPathComponent("access.log") }
    /// What the server wrote to stderr (tracebacks), for failure messages.
    var serverErrors: URL { scripts.appendingPathComponent("server.err") }

    init() throws {
        guard let mount = ServicePods.cgroup2Mount() else { throw ScratchError("no cgroup v2 mount") }
        cgroup = "\(mount)/nodeagent-test-l7-\(tag)"
        scripts = FileManager.default.temporaryDirectory.appendingPathComponent("nodeagent-l7-\(tag)")
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
            try addPod(serverNetns, address: serverIP, address6: serverIPv6, host: "l7\(tag)s")
            try addPod(clientNetns, address: clientIP, address6: clientIPv6, host: "l7\(tag)c")
        } catch {
            destroy()
            throw error
        }
    }

    /// Starts the server (after the enforcement is attached, or before: only connections accepted later are
    /// enrolled) and waits until it listens.
    func startServer() throws {
        let ready = scripts.appendingPathComponent("ready")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        process.arguments = [
            "--net=/var/run/netns/\(serverNetns)", "--", "/bin/sh", "-c",
            "echo $$ > \(cgroup)/cgroup.procs && exec /usr/bin/python3 \"$@\"", "sh",
            scripts.appendingPathComponent("server.py").path, String(port), accessLog.path, ready.path,
        ]
        process.standardOutput = FileHandle.nullDevice
        FileManager.default.createFile(atPath: serverErrors.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: serverErrors)
        try process.run()
        server = process
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: ready.path) { return }
            usleep(50_000)
        }
        let errors = (try? String(contentsOf: serverErrors, encoding: .utf8)) ?? ""
        throw ScratchError("the HTTP server did not start: \(errors)")
    }

    /// The request lines the server read, in order.
    func serverLog() -> [String] {
        guard let text = try? String(contentsOf: accessLog, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }

    /// One client connection to `host` (the server's IPv4 address unless given) running `steps` (see
    /// `clientScript`); what it read, one entry per "read" step.
    func session(_ steps: [String], to host: String? = nil) throws -> [[String: Any]] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments =
            [
                "netns", "exec", clientNetns, "/usr/bin/python3", scripts.appendingPathComponent("client.py").path,
                host ?? serverIP, String(port),
            ] + steps
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
            let answer = try JSONSerialization.jsonObject(with: data) as? [[String: Any]]
        else {
            throw ScratchError("client exited \(process.terminationStatus): \(String(decoding: data, as: UTF8.self))")
        }
        return answer
    }

    func destroy() {
        if let server, server.isRunning {
            server.terminate()
            server.waitUntilExit()
        }
        server = nil
        for name in namespaces.reversed() { _ = try? ScratchNetns.ip(["netns", "delete", name]) }
        namespaces = []
        for _ in 0..<50 where FileManager.default.fileExists(atPath: cgroup) {
            if rmdir(cgroup) == 0 || errno == ENOENT { break }
            usleep(100_000)
        }
        try? FileManager.default.removeItem(at: scripts)
    }

    private func addNamespace(_ name: String) throws {
        try ScratchNetns.ip(["netns", "add", name])
        namespaces.append(name)
    }

    private func addPod(_ netns: String, address: String, address6: String, host: String) throws {
        try addNamespace(netns)
        try ScratchNetns.ip([
            "-n", nodeNetns, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ])
        for command in [
            "link set lo up", "link set eth0 up", "address add \(address)/32 dev eth0",
            "route add \(subnet).1 dev eth0 scope link", "route add default via \(subnet).1 dev eth0",
            "address add \(address6)/128 dev eth0 nodad", "route add \(subnet6)::1 dev eth0",
            "route add ::/0 via \(subnet6)::1 dev eth0",
        ] {
            try ScratchNetns.ip(["-n", netns] + command.split(separator: " ").map(String.init))
        }
        for command in [
            "link set \(host) up", "address add \(subnet).1/32 dev \(host)", "route add \(address)/32 dev \(host)",
            "address add \(subnet6)::1/128 dev \(host) nodad", "route add \(address6)/128 dev \(host)",
        ] {
            try ScratchNetns.ip(["-n", nodeNetns] + command.split(separator: " ").map(String.init))
        }
    }

    /// HTTP/1.1 with keep-alive; every request line it reads goes to the log, bodies (by length or chunked) are echoed.
    static let serverScript = """
        import http.server, socket, socketserver, sys, time
        port, log, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3]

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # With a timeout Python polls and retries a read that fails with EAGAIN. An enrolled socket can give a
            # blocking reader EAGAIN: tcp_bpf_recvmsg_parser wakes on bytes still in the TCP queue for strparser.
            timeout = 30

            def record(self, extra=""):
                with open(log, "a") as f:
                    f.write(self.requestline + extra + "\\n")

            def answer(self, body):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self.record()
                if self.path == "/slow":
                    time.sleep(0.5)
                self.answer(b"ok " + self.path.encode() + b"\\n")

            def chunked(self):
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\\r\\n", b""):
                            pass
                        return body
                    body += self.rfile.read(size)
                    self.rfile.readline()

            def do_POST(self):
                if self.headers.get("Transfer-Encoding") == "chunked":
                    body = self.chunked()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.record(" body=" + body.decode())
                self.answer(b"got " + body)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            address_family = socket.AF_INET6

            def server_bind(self):
                # Dual stack: IPv4 clients arrive as IPv4-mapped addresses on this IPv6 socket.
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                super().server_bind()

        server = Server(("::", port), Handler)
        open(ready, "w").close()
        server.serve_forever()
        """

    /// How long a read waits comes from NODEAGENT_L7_CLIENT_TIMEOUT (seconds, default 5: every read expects an
    /// answer, and a request sent a byte per segment on a loaded machine can take seconds to be framed, the kernel's
    /// stream parser deferring to a worker while the server holds its socket); an emulated kernel (kernel-matrix.sh
    /// under TCG) gets 12.
    /// Steps: "send:<text>" (\\r\\n written as |), "slow:<text>" (one byte per segment), "big:<bytes>" (a GET with
    /// one header of that many bytes), "sleep:<seconds>", "read" (one answer: status, body, or "timeout"/"closed").
    static let clientScript = """
        import json, os, socket, sys, time
        host, port, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
        sock = socket.create_connection((host, port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(float(os.environ.get("NODEAGENT_L7_CLIENT_TIMEOUT", "5")))
        buf, out = b"", []

        def wire(text):
            return text.replace("|", "\\r\\n").encode()

        def fill():
            global buf
            data = sock.recv(65536)
            if not data:
                raise EOFError
            buf += data

        def read():
            global buf
            while b"\\r\\n\\r\\n" not in buf:
                fill()
            head, rest = buf.split(b"\\r\\n\\r\\n", 1)
            lines = head.decode().split("\\r\\n")
            headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
            length = int(headers.get("content-length", "0"))
            buf = rest
            while len(buf) < length:
                fill()
            body, buf = buf[:length], buf[length:]
            return {"status": int(lines[0].split()[1]), "body": body.decode(), "headers": headers}

        for step in steps:
            kind, _, arg = step.partition(":")
            try:
                if kind == "send":
                    sock.sendall(wire(arg))
                elif kind == "slow":
                    for byte in wire(arg):
                        sock.send(bytes([byte]))
                        time.sleep(0.003)
                elif kind == "big":
                    sock.sendall(b"GET /ok HTTP/1.1\\r\\nHost: x\\r\\nX-Big: " + b"a" * int(arg) + b"\\r\\n\\r\\n")
                elif kind == "sleep":
                    time.sleep(float(arg))
                elif kind == "read":
                    out.append(read())
            except socket.timeout:
                out.append({"error": "timeout"})
            except (EOFError, ConnectionResetError):
                out.append({"error": "closed"})
        print(json.dumps(out))
        """
}
