import Foundation
import XCTest

extension EndToEndTestCase {
    /// Skips unless the `etcd` and `etcdctl` binaries are in PATH.
    func requireEtcd() throws {
        for tool in ["etcd", "etcdctl"] {
            try XCTSkipIf((try? Shell.executablePath(tool)) == nil, "cluster tests need `\(tool)` in PATH")
        }
    }

    /// A new cluster of `nodes` nodes on one underlay, destroyed when the test ends; the test fails if anything of
    /// it remains then. When the test has failed, the cluster's diagnostics (etcd logs, ...) are printed first.
    func makeCluster(nodes: Int = 3, file: StaticString = #filePath, line: UInt = #line) throws -> ClusterTopology {
        try requireNetworkPrivileges()
        let cluster = try ClusterTopology(nodes: nodes)
        addTeardownBlock { [self] in
            // The run is not over yet, so `hasSucceeded` would still be false: count the failures instead.
            if let run = testRun, run.totalFailureCount > 0 { print(cluster.diagnostics()) }
            let problems = cluster.destroy()
            XCTAssertEqual(problems, [], "cleanup of run \(cluster.tag) reported problems", file: file, line: line)
            XCTAssertEqual(cluster.leftovers(), [], "run \(cluster.tag) left things behind", file: file, line: line)
        }
        return cluster
    }

    /// An etcd cluster of `members` members on `cluster`'s underlay, healthy; its log tails are part of the
    /// cluster's diagnostics.
    func makeEtcd(members: Int = 3, on cluster: ClusterTopology) throws -> EtcdCluster {
        try requireEtcd()
        return try EtcdCluster(members: members, on: cluster)
    }
}
