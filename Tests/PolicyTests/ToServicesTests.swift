import AgentAPI
import XCTest

@testable import Policy

/// `toServices` with `k8sService`: parsed with the policy's namespace as default, and resolved to the identities
/// the agent found for the service's backends at compile time.
final class ToServicesTests: XCTestCase {
    let client = Identity(id: 300, labels: labels("k8s:app=client", "k8s:io.kubernetes.pod.namespace=web-tier"))
    let db = Identity(id: 310, labels: labels("k8s:app=db", "k8s:io.kubernetes.pod.namespace=data"))
    let cache = Identity(id: 311, labels: labels("k8s:app=cache", "k8s:io.kubernetes.pod.namespace=data"))

    private func clientPolicy(_ egress: String, services: [ServiceReference: [UInt32]]) throws -> EndpointPolicy {
        let repo = try repository(
            policy(spec: #"{"endpointSelector": {"matchLabels": {"app": "client"}}, "egress": \#(egress)}"#))
        let peers = PolicyPeers(IdentityAllocator().identities + [client, db, cache], services: services)
        return repo.resolve(endpoint: client.labels, peers: peers, mode: .default)
    }

    func testTheNamespaceDefaultsToThePolicysAndCanBeNamed() throws {
        let docs = try PolicyParser.parse(
            JSON.parse(
                policy(
                    spec: #"""
                        {"endpointSelector": {}, "egress": [{"toServices": [
                            {"k8sService": {"serviceName": "db"}},
                            {"k8sService": {"serviceName": "dns", "namespace": "kube-system"}}]}]}
                        """#)))
        XCTAssertEqual(
            docs[0].rules[0].egress?[0].services,
            [
                ServiceReference(name: "db", namespace: "web-tier"),
                ServiceReference(name: "dns", namespace: "kube-system"),
            ])
        XCTAssertFalse(docs[0].rules[0].egress?[0].selectsAnyPeer ?? true, "a service is a peer field")
    }

    func testAClusterwidePolicyMustNameTheNamespace() throws {
        let text = #"""
            {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "c"},
             "spec": {"endpointSelector": {}, "egress": [{"toServices": [{"k8sService": {"serviceName": "db"}}]}]}}
            """#
        let error = try XCTUnwrap(parseError(text))
        XCTAssertEqual(error.field, "spec.egress[0].toServices[0].k8sService")
        XCTAssertTrue(error.message.contains("namespace is required"), error.message)
    }

    func testAServiceSelectsItsBackendsIdentitiesOnTheGivenPorts() throws {
        let egress = #"""
            [{"toServices": [{"k8sService": {"serviceName": "db", "namespace": "data"}}],
              "toPorts": [{"ports": [{"port": "5432", "protocol": "TCP"}]}]}]
            """#
        let db = ServiceReference(name: "db", namespace: "data")
        let policy = try clientPolicy(egress, services: [db: [310]])
        XCTAssertTrue(policy.egressEnforced)
        XCTAssertEqual(policy.decide(identity: 310, direction: .egress, proto: 6, port: 5432).verdict, .allowed)
        XCTAssertEqual(policy.decide(identity: 310, direction: .egress, proto: 6, port: 80).verdict, .denied)
        XCTAssertEqual(policy.decide(identity: 311, direction: .egress, proto: 6, port: 5432).verdict, .denied)
        // The same rule after the service's backends moved to the cache pods.
        let moved = try clientPolicy(egress, services: [db: [311]])
        XCTAssertEqual(moved.decide(identity: 311, direction: .egress, proto: 6, port: 5432).verdict, .allowed)
        XCTAssertEqual(moved.decide(identity: 310, direction: .egress, proto: 6, port: 5432).verdict, .denied)
    }

    func testAServiceUnknownOrWithoutBackendsAllowsNothing() throws {
        let egress = #"[{"toServices": [{"k8sService": {"serviceName": "db", "namespace": "data"}}]}]"#
        let cases: [[ServiceReference: [UInt32]]] = [[:], [ServiceReference(name: "db", namespace: "data"): []]]
        for services in cases {
            let policy = try clientPolicy(egress, services: services)
            XCTAssertTrue(policy.egressEnforced)
            XCTAssertEqual(policy.entries, [], "\(services)")
            XCTAssertEqual(policy.decide(identity: 310, direction: .egress, proto: 6, port: 5432).verdict, .denied)
        }
    }
}
