import AgentAPI
import EtcdClient
import Synchronization
import XCTest

@testable import Cluster

/// Nodes' pod CIDRs claimed from the cluster pool in a real etcd.
final class PodCIDRClaimsTests: EtcdBackedTestCase {
    var keys: ClusterKeys { ClusterKeys(cluster: clusterName) }
    let pool = [IPPrefix("10.60.0.0/16")!]

    func testNodesClaimingAtOnceGetDifferentSubnets() throws {
        let names = (1...8).map { "node-\($0)" }
        let claimed = Mutex<[String: IPPrefix]>([:])
        let endpoint = server.clientURL
        let keys = keys
        let pool = pool
        DispatchQueue.concurrentPerform(iterations: names.count) { index in
            let claims = PodCIDRClaims(client: EtcdClient(endpoints: [endpoint]), keys: keys)
            if let prefix = try? claims.claim(node: names[index], pools: pool, maskSize: 24, previous: nil) {
                claimed.withLock { $0[names[index]] = prefix }
            }
        }
        let result = claimed.withLock { $0 }
        XCTAssertEqual(result.count, names.count, "every node got one: \(result)")
        XCTAssertEqual(
            Set(result.values.map(\.description)), Set((0..<8).map { "10.60.\($0).0/24" }),
            "the first eight subnets, one each")
        let stored = try PodCIDRClaims(client: client, keys: keys).claims()
        XCTAssertEqual(stored, Dictionary(uniqueKeysWithValues: result.map { ($1, $0) }))
        for kv in try client.range(prefix: keys.podCIDRs).kvs { XCTAssertEqual(kv.lease, 0, "no lease: \(kv.key)") }
    }

    func testARestartKeepsTheClaimAndAnotherNodesClaimIsAConflict() throws {
        let claims = PodCIDRClaims(client: client, keys: keys)
        XCTAssertEqual(
            try claims.claim(node: "a", pools: pool, maskSize: 24, previous: nil).description, "10.60.0.0/24")
        let b = try claims.claim(node: "b", pools: pool, maskSize: 24, previous: nil)
        XCTAssertEqual(b.description, "10.60.1.0/24")
        // The agent restarts: without its saved claim (etcd has it), and with it.
        XCTAssertEqual(try claims.claim(node: "b", pools: pool, maskSize: 24, previous: nil), b)
        XCTAssertEqual(try claims.claim(node: "b", pools: pool, maskSize: 24, previous: b), b)
        // etcd lost its data: the saved claim is made again, not the first free subnet.
        _ = try client.deletePrefix(keys.podCIDRs)
        XCTAssertEqual(try claims.claim(node: "b", pools: pool, maskSize: 24, previous: b), b)
        XCTAssertEqual(
            try claims.claim(node: "a", pools: pool, maskSize: 24, previous: nil).description, "10.60.0.0/24")
        // A saved claim another node holds fails rather than silently moving the node's pods.
        XCTAssertThrowsError(try claims.claim(node: "c", pools: pool, maskSize: 24, previous: b)) { error in
            XCTAssertEqual((error as? AgentError)?.status, 409)
            XCTAssertTrue((error as? AgentError)?.message.contains("\"b\"") ?? false, "\(error)")
        }
    }

    func testClaimsOfAnotherMaskSizeAreAvoidedAndAFullPoolIs507() throws {
        let claims = PodCIDRClaims(client: client, keys: keys)
        _ = try client.put(keys.podCIDR(IPPrefix("10.60.0.0/23")!), "old")
        XCTAssertEqual(
            try claims.claim(node: "a", pools: pool, maskSize: 24, previous: nil).description, "10.60.2.0/24")
        let small = [IPPrefix("10.61.0.0/25")!]
        XCTAssertEqual(
            try claims.claim(node: "a", pools: small, maskSize: 26, previous: nil).description, "10.61.0.0/26")
        XCTAssertEqual(
            try claims.claim(node: "b", pools: small, maskSize: 26, previous: nil).description, "10.61.0.64/26")
        XCTAssertThrowsError(try claims.claim(node: "c", pools: small, maskSize: 26, previous: nil)) { error in
            XCTAssertEqual((error as? AgentError)?.status, 507)
        }
        let ipv6 = try claims.claim(node: "a", pools: [IPPrefix("fd00:60::/112")!], maskSize: 120, previous: nil)
        XCTAssertEqual(ipv6.description, "fd00:60::/120")
    }

    func testEtcdDownIsA503NamingEtcd() throws {
        let claims = PodCIDRClaims(
            client: EtcdClient(endpoints: [server.clientURL], requestTimeout: .seconds(1)), keys: keys)
        server.stop()
        XCTAssertThrowsError(try claims.claim(node: "a", pools: pool, maskSize: 24, previous: nil)) { error in
            XCTAssertEqual((error as? AgentError)?.status, 503)
            XCTAssertTrue((error as? AgentError)?.message.contains("etcd") ?? false, "\(error)")
        }
    }
}
