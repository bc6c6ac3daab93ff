import EtcdClient
import Foundation

/// A real single-member etcd on loopback: random ports, a temporary data directory, stopped and removed by
/// `stop()` (which tests call from their teardown, so a failing test leaves nothing behind).
public final class EtcdServer {
    public let directory: URL
    public let clientURL: String
    public let name: String
    private let process: Process

    /// Starts etcd and waits until it answers; `tls` serves HTTPS that requires client certificates signed by
    /// the given CA. A port taken between choosing it and etcd binding it makes etcd exit: then it starts again
    /// on other ports. `clientURL` reuses the client address of an etcd stopped before (a new, empty member on it).
    public init(tls: TestCertificates? = nil, clientURL reused: String? = nil) throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        name = "etcd-test-\(tag)"
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(name)
        var attempt = 1
        while true {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let (process, url) = try Self.launch(name: name, directory: directory, tls: tls, clientURL: reused)
            do {
                try Self.waitUntilServing(process, url: url, tls: tls, directory: directory)
                self.process = process
                clientURL = url
                return
            } catch let error as EtcdServerError where error.exitedEarly && attempt < 3 {
                attempt += 1
            }
        }
    }

    private static func launch(name: String, directory: URL, tls: TestCertificates?, clientURL reused: String?) throws
        -> (Process, String)
    {
        let scheme = tls == nil ? "http" : "https"
        let port = try reused.flatMap { URLComponents(string: $0)?.port } ?? freeLoopbackPort()
        let clientURL = "\(scheme)://127.0.0.1:\(port)"
        let peerURL = "http://127.0.0.1:\(try freeLoopbackPort())"
        var arguments = [
            "--name", name, "--data-dir", directory.appendingPathComponent("data").path,
            "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
            "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
            "--initial-cluster", "\(name)=\(peerURL)", "--initial-cluster-state", "new",
            "--logger", "zap", "--log-outputs", directory.appendingPathComponent("etcd.log").path,
        ]
        if let tls {
            arguments += [
                "--cert-file", tls.serverCert, "--key-file", tls.serverKey, "--client-cert-auth",
                "--trusted-ca-file", tls.caCert,
            ]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/etcd")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return (process, clientURL)
    }

    /// Polls the member's status until it has a leader (a single member elects itself within about a second);
    /// on failure etcd is stopped and its directory removed.
    private static func waitUntilServing(_ process: Process, url: String, tls: TestCertificates?, directory: URL)
        throws
    {
        let client = EtcdClient(endpoints: [url], tls: tls?.clientFiles, requestTimeout: .seconds(1))
        let deadline = Date().addingTimeInterval(20)
        var lastError = ""
        while Date() < deadline, process.isRunning {
            do {
                if try client.status(endpoint: url).leader != 0 { return }
            } catch {
                lastError = error.message
            }
            usleep(100_000)
        }
        let exitedEarly = !process.isRunning
        let log = (try? String(contentsOf: directory.appendingPathComponent("etcd.log"), encoding: .utf8)) ?? ""
        stop(process, directory: directory)
        throw EtcdServerError(
            message: "etcd did not start: \(lastError)\n\(log.suffix(2000))", exitedEarly: exitedEarly)
    }

    /// Kills etcd and removes its directory. Idempotent.
    public func stop() {
        Self.stop(process, directory: directory)
    }

    private static func stop(_ process: Process, directory: URL) {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }
}

public struct EtcdServerError: Error, CustomStringConvertible {
    public var message: String
    /// etcd exited by itself (e.g. a port was taken), rather than not answering.
    var exitedEarly = false
    public var description: String { message }
}

/// A loopback TCP port nothing listens on right now (bound, read and closed: the kernel does not hand it out
/// again at once).
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
            bind(fd, generic, length) == 0 && getsockname(fd, generic, &length) == 0
        }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}
