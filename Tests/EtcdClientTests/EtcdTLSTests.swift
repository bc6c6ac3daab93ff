import AgentAPI
import EtcdClient
import EtcdTestSupport
import HTTPClient
import XCTest

/// etcd serving HTTPS with `--client-cert-auth`: the client gets in with a certificate of the trusted CA, and
/// fails clearly without one.
final class EtcdTLSTests: XCTestCase {
    private var certificates: TestCertificates?
    private var server: EtcdServer?

    override func tearDown() {
        server?.stop()
        certificates?.remove()
    }

    func testClientCertificatesAreRequired() throws {
        let certificates = try TestCertificates()
        self.certificates = certificates
        let server = try EtcdServer(tls: certificates)
        self.server = server
        XCTAssertTrue(server.clientURL.hasPrefix("https://"))

        let client = EtcdClient(endpoints: [server.clientURL], tls: certificates.clientFiles)
        try client.put("/tls/k", "v")
        XCTAssertEqual(try client.get("/tls/k")?.valueString, "v")
        XCTAssertEqual(try client.memberList().count, 1)
        let start = try client.range(prefix: "/tls/").revision + 1
        let recorder = WatchRecorder()
        let watch = recorder.watch(client, prefix: "/tls/", from: start)
        defer { watch.cancel() }
        try client.put("/tls/k", "w")
        XCTAssertTrue(recorder.wait { $0.events.count == 1 }, "failures: \(recorder.failures)")

        // No TLS files: the server's certificate is not trusted (nor would a request without a certificate be).
        let anonymous = EtcdClient(endpoints: [server.clientURL], requestTimeout: .seconds(2))
        XCTAssertThrowsError(try anonymous.get("/tls/k")) { error in
            let message = (error as? AgentError)?.message ?? "\(error)"
            XCTAssertEqual((error as? AgentError)?.status, 503)
            XCTAssertTrue(message.contains("etcd") && message.contains(server.clientURL), message)
            XCTAssertTrue(message.contains("TLS"), message)
        }
        // A certificate from a CA etcd does not trust is refused.
        let stranger = EtcdClient(
            endpoints: [server.clientURL], tls: certificates.strangerFiles, requestTimeout: .seconds(2))
        XCTAssertThrowsError(try stranger.get("/tls/k")) { error in
            let message = (error as? AgentError)?.message ?? "\(error)"
            XCTAssertEqual((error as? AgentError)?.status, 503)
            XCTAssertTrue(message.contains("etcd") && message.contains(server.clientURL), message)
        }
    }
}
