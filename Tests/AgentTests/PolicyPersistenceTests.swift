import AgentAPI
import DatapathCore
import Foundation
import Policy
import XCTest

@testable import Agent

/// The saved policy: an array of a header and the documents as submitted, read back one document at a time, and
/// the layout of version 2 (the documents inside the header) still read.
final class PolicyPersistenceTests: ScratchAgentTestCase {
    private func agent() throws -> NodeAgent {
        try NodeAgent(config: agentConfig, plugins: [], logLevel: LogLevelBox(.info))
    }

    private static let documents = """
        [
          {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "a", "namespace": "ns1"},
           "spec": {"endpointSelector": {"matchLabels": {"app": "db"}},
                    "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}],
                                 "toPorts": [{"ports": [{"port": "5432", "protocol": "TCP"}]}]}]}},
          {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "b", "namespace": "ns1"},
           "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
          {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "c"},
           "spec": {"endpointSelector": {}, "egress": [{"toEntities": ["world"]}]}}
        ]
        """

    private struct Saved: Equatable {
        let documents: [PolicyDocument]
        let ruleNames: [UInt32: String]
        let revision: UInt64
    }

    private func saved(_ agent: NodeAgent) -> Saved {
        agent.state.withLock {
            Saved(documents: $0.policy.documents, ruleNames: $0.policy.ruleNames, revision: $0.policy.revision)
        }
    }

    /// A fresh agent on the same state directory, restored.
    private func restarted() throws -> Saved {
        let agent = try agent()
        defer { agent.stop() }
        try agent.restore()
        return saved(agent)
    }

    func testTheDocumentsFollowTheHeaderAndComeBackAsTheyWere() throws {
        let first = try agent()
        let initial = saved(first).revision
        _ = try first.importPolicies(try PolicyParser.parse(try JSON.parse(Self.documents)))
        _ = try first.deletePolicies(.named(namespace: "ns1", "a", kind: nil))
        _ = try first.importPolicies(try PolicyParser.parse(try JSON.parse(Self.documents)))
        let before = saved(first)
        first.stop()
        XCTAssertEqual(before.documents.count, 3)
        XCTAssertEqual(before.revision, initial + 3)

        let path = "\(stateDir)/\(NodeAgent.policyDocument).json"
        let file = try JSON.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        let elements = try XCTUnwrap(file.arrayValue)
        XCTAssertEqual(elements.first?["version"], 3)
        XCTAssertEqual(elements.first?["revision"], .int(Int64(before.revision)))
        XCTAssertEqual(Array(elements.dropFirst()), before.documents.map(\.json))
        XCTAssertEqual(try restarted(), before)

        // Version 2: one object, the documents inside it.
        var header = try XCTUnwrap(elements.first?.objectValue)
        header["version"] = 2
        header["documents"] = .array(Array(elements.dropFirst()))
        try Data(JSON.object(header).serializedBytes()).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try restarted(), before)
    }

    func testAStoredDocumentThatNoLongerParsesStopsTheRestoreNamingTheFile() throws {
        let first = try agent()
        _ = try first.importPolicies(try PolicyParser.parse(try JSON.parse(Self.documents)))
        first.stop()
        let path = "\(stateDir)/\(NodeAgent.policyDocument).json"
        var elements = try XCTUnwrap(try JSON.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path)))).arrayValue)
        elements[2] = ["apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "spec": [:]]
        try Data(JSON.array(elements).serializedBytes()).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try restarted()) { error in
            let message = (error as? AgentError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains(path) && message.contains("[2]"), message)
        }
    }
}
