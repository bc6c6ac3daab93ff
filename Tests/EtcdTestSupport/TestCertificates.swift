import EtcdClient
import Foundation
import HTTPClient

/// A CA, a server certificate for 127.0.0.1 (also usable as a client certificate: etcd's JSON gateway dials
/// etcd's own gRPC server with it) and a client certificate, made with `openssl` in a temporary
/// directory; plus a second CA's client certificate that the server must refuse.
public struct TestCertificates {
    public let directory: URL
    public var caCert: String { path("ca.crt") }
    public var serverCert: String { path("server.crt") }
    public var serverKey: String { path("server.key") }

    /// The files the client presents.
    public var clientFiles: TLSFiles {
        TLSFiles(caFile: caCert, certFile: path("client.crt"), keyFile: path("client.key"))
    }

    /// A client certificate from a CA the server does not trust.
    public var strangerFiles: TLSFiles {
        TLSFiles(caFile: caCert, certFile: path("stranger.crt"), keyFile: path("stranger.key"))
    }

    public init() throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("etcd-certs-\(tag)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try makeCA("ca")
        try makeCA("other-ca")
        try makeLeaf(
            "server", ca: "ca", extensions: "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
        try makeLeaf("client", ca: "ca", extensions: "extendedKeyUsage=clientAuth\n")
        try makeLeaf("stranger", ca: "other-ca", extensions: "extendedKeyUsage=clientAuth\n")
    }

    public func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func makeCA(_ name: String) throws {
        try openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-keyout", path("\(name).key"), "-out", path("\(name).crt"), "-subj", "/CN=\(name)",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
    }

    private func makeLeaf(_ name: String, ca: String, extensions: String) throws {
        try openssl([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", "/CN=\(name)",
        ])
        try extensions.write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(ca).crt"), "-CAkey", path("\(ca).key"),
            "-CAcreateserial", "-days", "1", "-out", path("\(name).crt"), "-extfile", path("\(name).ext"),
        ])
    }

    private func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw NSError(
                domain: "openssl", code: Int(process.terminationStatus),
                userInfo: [NSLocalizedDescriptionKey: String(decoding: output, as: UTF8.self)])
        }
    }
}
