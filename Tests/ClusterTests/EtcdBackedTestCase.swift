import EtcdClient
import EtcdTestSupport
import Logging
import XCTest

/// A real single-member etcd for each test, stopped even when the test fails, and a cluster name unique to it.
class EtcdBackedTestCase: XCTestCase {
    var server: EtcdServer!
    var client: EtcdClient!
    var clusterName = ""
    let logger = Logger(label: "cluster-test")

    override func setUpWithError() throws {
        server = try EtcdServer()
        client = EtcdClient(endpoints: [server.clientURL], requestTimeout: .seconds(3))
        clusterName = "c\(UInt32.random(in: 0...UInt32.max))"
    }

    override func tearDown() {
        server?.stop()
        server = nil
        client = nil
    }

    /// Polls `condition` until it holds or `timeout` passes.
    func eventually(
        _ what: String, timeout: TimeInterval = 10, file: StaticString = #filePath, line: UInt = #line,
        _ condition: () throws -> Bool
    ) rethrows {
        let deadline = Date() + timeout
        while Date() < deadline {
            if try condition() { return }
            usleep(20_000)
        }
        XCTFail("timed out waiting for \(what)", file: file, line: line)
    }
}
