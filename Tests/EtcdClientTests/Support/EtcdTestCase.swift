import EtcdClient
import EtcdTestSupport
import XCTest

/// Starts a real etcd for each test and always stops it, even when the test fails.
class EtcdTestCase: XCTestCase {
    var server: EtcdServer!
    var client: EtcdClient!
    /// A key prefix unique to this test.
    var prefix = ""

    override func setUpWithError() throws {
        server = try EtcdServer()
        client = EtcdClient(endpoints: [server.clientURL], requestTimeout: .seconds(5))
        prefix = "/test-\(UInt32.random(in: 0...UInt32.max))/"
    }

    override func tearDown() {
        server?.stop()
        server = nil
        client = nil
    }
}
