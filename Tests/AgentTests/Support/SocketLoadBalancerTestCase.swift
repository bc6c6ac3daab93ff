import DatapathCore
import Foundation
import Glibc
import XCTest

@testable import Agent

/// A test with `ServicePods` and a socket load balancer of its own: its pins under a bpffs directory carrying the
/// pods' tag, its hooks attached at the pods' cgroup (never the machine's root cgroup); all of it removed after.
class SocketLoadBalancerTestCase: XCTestCase {
    var pods: ServicePods!
    var pinRoot = ""
    var balancer: SocketLoadBalancing?

    /// The pods each test gets.
    var podCounts: (backends: Int, clients: Int) { (3, 1) }

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("namespaces, cgroups and BPF programs need root") }
        pods = try ServicePods(backends: podCounts.backends, clients: podCounts.clients)
        pinRoot = "/sys/fs/bpf/nodeagent-test-sock-\(pods.tag)"
        balancer = try SocketLoadBalancing.start(cgroupRoot: pods.cgroup, pinRoot: pinRoot)
    }

    override func tearDown() {
        balancer?.stop()
        balancer = nil
        if !pinRoot.isEmpty {
            try? SocketLoadBalancing.detach(pinRoot: pinRoot)
            BPFFS.removeAll(root: pinRoot)
        }
        pods?.destroy()
    }

    var datapath: SocketLoadBalancer { balancer!.datapath }
}
