import Foundation
import Glibc

/// What curl in a pod got for one HTTP request: its exit status (28: timed out), the status code ("000" when no
/// answer came) and the body.
struct HTTPAnswer: CustomStringConvertible {
    var exit: Int32
    var code: String
    var body: String
    var description: String { "exit \(exit), HTTP \(code), body \(body.debugDescription)" }
}

extension EndToEndTestCase {
    /// One request with curl from `pod` (POST with `post` as its body when given).
    func curl(
        from pod: Pod, _ url: String, post: String? = nil, headers: [String] = [], timeout: Int = 5
    ) throws -> HTTPAnswer {
        let out = "\(Topology.temporaryDirectory)/na-curl-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(out) }
        var arguments = [
            "nsenter", "--net=\(Netns.path(pod.netns))", "--", "curl", "-s", "-o", out, "-w", "%{http_code}",
            "--max-time", "\(timeout)",
        ]
        if let post { arguments += ["-X", "POST", "--data", post] }
        for header in headers { arguments += ["-H", header] }
        let result = try Shell.capture(arguments + [url], timeout: TimeInterval(timeout + 5))
        let body = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        return HTTPAnswer(exit: result.status, code: result.stdout, body: body)
    }
}

/// Python's HTTP/1.1 server (keep-alive) in a pod and the agent's cgroup, writing "METHOD PATH" for every request
/// it reads to its log.
struct HTTPServer {
    let log: String

    /// `acceptDelay`: seconds the server waits before its first accept (connections queue meanwhile).
    init(on pod: Pod, port: UInt16, agent: AgentProcess, topology: Topology, acceptDelay: Double = 0) throws {
        let directory = try topology.run.temporaryDirectory("http-\(pod.name)")
        let script = "\(directory)/server.py"
        log = "\(directory)/access.log"
        let ready = "\(directory)/ready"
        try Self.script.write(toFile: script, atomically: true, encoding: .utf8)
        let command = TestCgroup.command(
            ["python3", script, "\(port)", log, ready, "\(acceptDelay)"], netns: pod.netns, cgroup: agent.cgroupRoot)
        try ReadyServer.start(command, ready: ready, topology: topology, what: "HTTP server on \(pod) port \(port)")
    }

    /// "METHOD PATH" of every request the server read, in order.
    func requests() throws -> [String] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    static let script = """
        import http.server, select, socket, sys, time
        port, log, ready, delay = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])

        class Polling:
            # Reads a socket without trusting its wakeups: an enrolled socket's read can fail with EAGAIN while
            # bytes wait for the stream parser (tcp_bpf_recvmsg_parser), so an empty read is retried within 50 ms.

            def __init__(self, sock):
                self.sock, self.buf = sock, b""

            def more(self):
                while True:
                    try:
                        data = self.sock.recv(65536, socket.MSG_DONTWAIT)
                    except (BlockingIOError, InterruptedError):
                        select.select([self.sock], [], [], 0.05)
                        continue
                    except OSError:
                        return False
                    self.buf += data
                    return bool(data)

            def readline(self, limit=-1):
                while b"\\n" not in self.buf and self.more():
                    pass
                end = self.buf.find(b"\\n")
                n = len(self.buf) if end < 0 else end + 1
                if limit >= 0:
                    n = min(n, limit)
                line, self.buf = self.buf[:n], self.buf[n:]
                return line

            def read(self, n):
                while len(self.buf) < n and self.more():
                    pass
                out, self.buf = self.buf[:n], self.buf[n:]
                return out

            def close(self):
                pass

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                self.rfile = Polling(self.connection)

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with open(log, "a") as f:
                    f.write(f"{self.command} {self.path}\\n")
                body = f"ok {self.command} {self.path}\\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = answer

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def get_request(self):
                global delay
                time.sleep(delay)
                delay = 0
                return super().get_request()

        server = Server(("0.0.0.0", port), Handler)
        open(ready, "w").close()
        server.serve_forever()
        """
}

/// A client in a pod holding one keep-alive connection to port 8080 of a server pod: it sends each step's request
/// ("GET /path") and prints the answer's status (or "reset", "closed", "timeout"); at "wait" it pauses until
/// `resume()`.
final class KeepAliveSteps {
    private let process = Process()
    private let output = Pipe()
    private let go: String

    init(from pod: Pod, to server: Pod, topology: Topology, steps: [String]) throws {
        let directory = try topology.run.temporaryDirectory("steps-\(UInt32.random(in: 0...UInt32.max))")
        go = "\(directory)/go"
        let script = "\(directory)/client.py"
        try Self.script.write(toFile: script, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: try Shell.executablePath("nsenter"))
        process.arguments =
            ["--net=\(Netns.path(pod.netns))", "--", "python3", script, server.ipv4, "8080", go] + steps
        process.standardOutput = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit { if process.isRunning { process.terminate() } }

    /// Waits until the server has read `count` requests.
    func waitUntilServed(_ server: HTTPServer, count: Int) throws {
        let deadline = Date() + 10
        while try server.requests().count < count && Date() < deadline { usleep(20_000) }
    }

    /// Lets the client go on past "wait" and returns every status it printed.
    func resume() throws -> [String] {
        FileManager.default.createFile(atPath: go, contents: nil)
        process.waitUntilExit()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return printed.split(separator: "\n").map(String.init)
    }

    static let script = """
        import os, socket, sys, time
        ip, port, go, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
        s = socket.create_connection((ip, port), timeout=5)

        def status():
            data = b""
            while b"\\r\\n\\r\\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return "closed"
                data += chunk
            head, _, rest = data.partition(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(rest) < length:
                chunk = s.recv(4096)
                if not chunk:
                    break
                rest += chunk
            return head.split(b" ")[1].decode()

        for step in steps:
            if step == "wait":
                while not os.path.exists(go):
                    time.sleep(0.02)
                continue
            method, path = step.split(" ", 1)
            try:
                s.sendall(f"{method} {path} HTTP/1.1\\r\\nHost: {ip}\\r\\n\\r\\n".encode())
                print(status(), flush=True)
            except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
                print("reset", flush=True)
                break
            except socket.timeout:
                print("timeout", flush=True)
                break
        """
}
