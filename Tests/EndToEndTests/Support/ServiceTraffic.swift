import AgentAPI
import Foundation

/// Backends that say who they are and clients that count who answered, for services under test: Python servers
/// in backend pods (TCP: the pod's name on connect, then an echo; UDP: the name and the datagram back), and a
/// client script run inside a pod and the agent's cgroup (`AgentProcess.runInPod`), printing one JSON object.
struct ServiceTraffic {
    let directory: String
    var serverScript: String { "\(directory)/server.py" }
    var clientScript: String { "\(directory)/client.py" }

    /// Writes the scripts into `/tmp/na<tag>-svc` (removed with the run).
    init(topology: Topology) throws {
        directory = try topology.run.temporaryDirectory("svc")
        try Self.server.write(toFile: serverScript, atomically: true, encoding: .utf8)
        try Self.client.write(toFile: clientScript, atomically: true, encoding: .utf8)
    }

    /// Starts a server answering as `pod.name` on TCP and UDP `port` in the pod, stopped when the topology goes;
    /// returns once it listens.
    func startServer(on pod: Pod, port: UInt16, in topology: Topology) throws {
        let ready = "\(directory)/ready-\(pod.name)-\(port)"
        try ReadyServer.start(
            [
                try Shell.executablePath("nsenter"), "--net=\(Netns.path(pod.netns))", "python3", serverScript,
                pod.name,
                "\(port)", ready,
            ], ready: ready, topology: topology, what: "server on \(pod) port \(port)")
    }

    /// Runs the client in `pod` and `agent`'s cgroup: `mode` is `tcp` or `udp` (with `count` requests to
    /// `ip`:`port`) or `steady` (new connections and one long one for `count` seconds); `hold` (one connection
    /// exchanging lines for `count` seconds or until it ends, its backend's name written to the file named by
    /// the extra argument at once) runs through `holdProcess`.
    /// `outsideCgroup` runs it in the pod's network namespace only, where no socket hook translates: the
    /// endpoint programs' per-packet translation then does.
    func client(
        _ mode: String, from pod: any NetworkHost, to ip: String, port: UInt16, count: Int, agent: AgentProcess,
        outsideCgroup: Bool = false
    ) throws -> JSON {
        let arguments = ["python3", clientScript, mode, ip, "\(port)", "\(count)"]
        let result =
            outsideCgroup
            ? try Shell.capture(["nsenter", "--net=\(Netns.path(pod.netns))", "--"] + arguments, timeout: 120)
            : try agent.runInPod(arguments, netns: pod.netns, timeout: 120)
        guard result.status == 0 else { throw AgentHarnessError("client \(mode) to \(ip):\(port): \(result)") }
        return try JSON.parse(result.stdout)
    }

    /// The `hold` client as a process not yet started; its backend's name appears in `nameFile` once connected.
    func holdProcess(from pod: Pod, to ip: String, port: UInt16, seconds: Int, nameFile: String, agent: AgentProcess)
        throws -> Process
    {
        let command = TestCgroup.command(
            ["python3", clientScript, "hold", ip, "\(port)", "\(seconds)", nameFile], netns: pod.netns,
            cgroup: agent.cgroupRoot)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardInput = FileHandle.nullDevice
        return process
    }

    static let server = """
        import socket, sys, threading
        name, port, ready = sys.argv[1].encode(), int(sys.argv[2]), sys.argv[3]

        def talk(conn):
            try:
                conn.sendall(name + b"\\n")
                while True:
                    data = conn.recv(4096)
                    if not data:
                        break
                    conn.sendall(data)
            except OSError:
                pass
            finally:
                conn.close()

        def tcp():
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("0.0.0.0", port))
            listener.listen(1024)
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=talk, args=(conn,), daemon=True).start()

        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("0.0.0.0", port))
        threading.Thread(target=tcp, daemon=True).start()
        open(ready, "w").close()
        while True:
            data, peer = udp.recvfrom(4096)
            udp.sendto(name + b" " + data, peer)
        """

    /// tcp: `count` connections, each reading the backend's name and its peer address (getpeername);
    /// udp: `count` queries on one socket, each answer's name and source address (recvfrom);
    /// steady: for `count` seconds a new connection every 20 ms that must answer, and one connection kept open
    /// that exchanges a line every 50 ms.
    static let client = """
        import json, socket, sys, time
        mode, ip, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        names, peers, errors = {}, set(), []

        def connect():
            conn = socket.create_connection((ip, port), timeout=3)
            reader = conn.makefile("rb")
            return conn, reader, reader.readline().strip().decode()

        if mode == "tcp":
            for _ in range(count):
                try:
                    conn, reader, name = connect()
                    names[name] = names.get(name, 0) + 1
                    peers.add("%s:%d" % conn.getpeername()[:2])
                    conn.close()
                except OSError as error:
                    errors.append(str(error))
            print(json.dumps({"names": names, "peers": sorted(peers), "errors": errors}))
        elif mode == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.settimeout(2)
            for i in range(count):
                query = b"query-%d" % i
                try:
                    sock.sendto(query, (ip, port))
                    data, source = sock.recvfrom(4096)
                    name, _, echoed = data.partition(b" ")
                    if echoed != query:
                        errors.append("answer %r to %r" % (data, query))
                    names[name.decode()] = names.get(name.decode(), 0) + 1
                    peers.add("%s:%d" % source[:2])
                except OSError as error:
                    errors.append(str(error))
            print(json.dumps({"names": names, "peers": sorted(peers), "errors": errors}))
        elif mode == "hold":
            conn, reader, name = connect()
            with open(sys.argv[5], "w") as f:
                f.write(name)
            exchanges, ended, deadline = 0, None, time.time() + count
            while time.time() < deadline and ended is None:
                line = b"line %d\\n" % exchanges
                try:
                    conn.sendall(line)
                    got = reader.readline()
                    if got == line:
                        exchanges += 1
                    else:
                        ended = "closed by the peer" if not got else "wrong echo"
                except OSError as error:
                    ended = str(error)
                time.sleep(0.05)
            print(json.dumps({"name": name, "exchanges": exchanges, "ended": ended}))
        else:
            long_conn, long_reader, _ = connect()
            exchanges, opened, deadline, next_line = 0, 0, time.time() + count, 0.0
            while time.time() < deadline:
                try:
                    conn, reader, name = connect()
                    if not name:
                        errors.append("connection %d: no name" % opened)
                    conn.close()
                    opened += 1
                except OSError as error:
                    errors.append("connection %d: %s" % (opened, error))
                if time.time() >= next_line:
                    line = b"line %d\\n" % exchanges
                    try:
                        long_conn.sendall(line)
                        if long_reader.readline() != line:
                            errors.append("long connection: wrong echo")
                        exchanges += 1
                    except OSError as error:
                        errors.append("long connection: %s" % error)
                    next_line = time.time() + 0.05
                time.sleep(0.02)
            print(json.dumps({"opened": opened, "exchanges": exchanges, "errors": errors}))
        """
}
