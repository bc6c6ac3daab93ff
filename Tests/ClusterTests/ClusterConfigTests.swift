import AgentAPI
import XCTest

@testable import Cluster

/// The `cluster` configuration section: defaults, and errors naming the field for everything wrong.
final class ClusterConfigTests: XCTestCase {
    func parse(_ text: String) throws -> ClusterConfig {
        try ClusterConfig(json: try JSON.parse(text), hostName: "host-a")
    }

    func error(_ text: String) -> AgentError? {
        do {
            _ = try parse(text)
            return nil
        } catch let error as AgentError {
            return error
        } catch {
            return nil
        }
    }

    func testDefaultsAndFullSection() throws {
        let minimal = try parse(#"{"etcd": {"endpoints": ["http://10.0.0.2:2379"]}}"#)
        XCTAssertEqual(minimal.name, "default")
        XCTAssertEqual(minimal.nodeName, "host-a")
        XCTAssertNil(minimal.nodeAddress)
        XCTAssertEqual(minimal.etcd.endpoints, ["http://10.0.0.2:2379"])
        XCTAssertEqual(minimal.etcd.leaseTTLSeconds, 15)

        let full = try parse(
            #"""
            {"name": "prod", "node-name": "node-1", "node-address": "192.168.7.1",
             "etcd": {"endpoints": ["http://10.0.0.2:2379/", "http://[fd00::2]:2379"], "lease-ttl": "1m"}}
            """#)
        XCTAssertEqual(full.name, "prod")
        XCTAssertEqual(full.nodeName, "node-1")
        XCTAssertEqual(full.nodeAddress?.description, "192.168.7.1")
        XCTAssertEqual(full.etcd.endpoints, ["http://10.0.0.2:2379", "http://[fd00::2]:2379"])
        XCTAssertEqual(full.etcd.leaseTTLSeconds, 60)
        XCTAssertEqual(full.json["etcd"]?["lease-ttl"]?.stringValue, "60s")
        XCTAssertEqual(minimal.identityGCGrace, .seconds(15 * 60), "Cilium's interval, grace as long")

        let gc = try parse(
            #"{"etcd": {"endpoints": ["http://a:1"]}, "identity-gc-interval": "2m", "identity-gc-grace": "500ms"}"#)
        XCTAssertEqual(gc.identityGCIntervalMilliseconds, 120_000)
        XCTAssertEqual(gc.identityGCGrace, .milliseconds(500))
        XCTAssertEqual(gc.json["identity-gc-grace"]?.stringValue, "500ms")
    }

    func testEveryBadValueNamesItsField() {
        let cases: [(String, String)] = [
            (#"{}"#, "cluster.etcd"),
            (#"{"etcd": {}}"#, "cluster.etcd.endpoints"),
            (#"{"etcd": {"endpoints": []}}"#, "cluster.etcd.endpoints"),
            (#"{"etcd": {"endpoints": ["10.0.0.2:2379"]}}"#, "cluster.etcd.endpoints[0]"),
            (#"{"etcd": {"endpoints": ["http://a:1", "ftp://b:2"]}}"#, "cluster.etcd.endpoints[1]"),
            (#"{"etcd": {"endpoints": ["http://a"]}}"#, "cluster.etcd.endpoints[0]"),
            (#"{"etcd": {"endpoints": ["http://a:1"], "lease-ttl": "2s"}}"#, "cluster.etcd.lease-ttl"),
            (#"{"etcd": {"endpoints": ["http://a:1"], "ca-file": "/nonexistent/ca.pem"}}"#, "cluster.etcd.ca-file"),
            (#"{"etcd": {"endpoints": ["http://a:1"], "leasettl": "5s"}}"#, "cluster.etcd.leasettl"),
            (#"{"etcd": {"endpoints": ["http://a:1"]}, "nodename": "x"}"#, "cluster.nodename"),
            (#"{"etcd": {"endpoints": ["http://a:1"]}, "node-name": "Node_1"}"#, "cluster.node-name"),
            (#"{"etcd": {"endpoints": ["http://a:1"]}, "name": ""}"#, "cluster.name"),
            (#"{"etcd": {"endpoints": ["http://a:1"]}, "node-address": "fd00::1"}"#, "cluster.node-address"),
            (#"{"etcd": {"endpoints": ["http://a:1"]}, "node-address": "10.0.0.300"}"#, "cluster.node-address"),
            (#"{"etcd": "http://a:1"}"#, "cluster.etcd"),
            (
                #"{"etcd": {"endpoints": ["http://a:1"]}, "identity-gc-interval": "1ms"}"#,
                "cluster.identity-gc-interval"
            ),
            (#"{"etcd": {"endpoints": ["http://a:1"]}, "identity-gc-grace": "soon"}"#, "cluster.identity-gc-grace"),
        ]
        for (text, field) in cases {
            let error = self.error(text)
            XCTAssertEqual(error?.field, field, "\(text): \(error?.message ?? "accepted")")
            XCTAssertEqual(error?.status, 400, text)
        }
    }

    func testTLSFilesMustBeReadableAndComplete() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-config-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for name in ["ca.pem", "node.pem", "node-key.pem"] {
            XCTAssertTrue(
                FileManager.default.createFile(atPath: directory.appendingPathComponent(name).path, contents: Data()))
        }
        let path = directory.path
        let files = #""ca-file": "\#(path)/ca.pem", "cert-file": "\#(path)/node.pem""#
        let good = try parse(
            #"{"etcd": {"endpoints": ["https://a:2379"], \#(files), "key-file": "\#(path)/node-key.pem"}}"#)
        XCTAssertEqual(good.etcd.certFile, "\(path)/node.pem")
        let halfPair = error(#"{"etcd": {"endpoints": ["https://a:2379"], \#(files)}}"#)
        XCTAssertEqual(halfPair?.field, "cluster.etcd.key-file")
        let plainHTTP = error(#"{"etcd": {"endpoints": ["http://a:2379"], "ca-file": "\#(path)/ca.pem"}}"#)
        XCTAssertEqual(plainHTTP?.field, "cluster.etcd.endpoints")
    }
}
