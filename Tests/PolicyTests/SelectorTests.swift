import AgentAPI
import XCTest

@testable import Policy

final class SelectorTests: XCTestCase {
    /// Parses a selector's JSON text as an endpoint selector of a cluster-wide rule (no namespace added).
    private func selector(_ text: String) throws -> LabelSelector {
        try PolicyParser.selector(FieldReader(JSON.parse(text), path: "endpointSelector"))
    }

    func testMatchExpressionOperators() throws {
        let prodWeb = labels("k8s:app=web", "k8s:env=prod")
        let devDB = labels("k8s:app=db", "k8s:env=dev", "k8s:canary=")
        let bare = labels("k8s:app=web")

        let isIn = try selector(#"{"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "qa"]}]}"#)
        XCTAssertTrue(isIn.matches(prodWeb))
        XCTAssertFalse(isIn.matches(devDB))
        XCTAssertFalse(isIn.matches(bare))

        let notIn = try selector(#"{"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}"#)
        XCTAssertFalse(notIn.matches(prodWeb))
        XCTAssertTrue(notIn.matches(devDB))
        XCTAssertTrue(notIn.matches(bare), "NotIn holds when the key is absent")

        let exists = try selector(#"{"matchExpressions": [{"key": "canary", "operator": "Exists"}]}"#)
        XCTAssertTrue(exists.matches(devDB), "an empty value still exists")
        XCTAssertFalse(exists.matches(prodWeb))

        let absent = try selector(
            #"{"matchExpressions": [{"key": "canary", "operator": "DoesNotExist", "values": []}]}"#)
        XCTAssertFalse(absent.matches(devDB))
        XCTAssertTrue(absent.matches(prodWeb))

        let both = try selector(
            #"{"matchLabels": {"app": "web"}, "#
                + #""matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}"#)
        XCTAssertTrue(both.matches(prodWeb))
        XCTAssertFalse(both.matches(bare), "every requirement must hold")

        XCTAssertTrue(try selector("{}").matches(devDB))
        XCTAssertTrue(try selector("{}").matches(LabelSet()))
    }

    func testSourcePrefixSemantics() throws {
        let fromK8s = labels("k8s:app=web")
        let fromContainer = labels("container:app=web")
        let any = try selector(#"{"matchLabels": {"app": "web"}}"#)
        XCTAssertTrue(any.matches(fromK8s))
        XCTAssertTrue(any.matches(fromContainer))
        let explicitAny = try selector(#"{"matchLabels": {"any:app": "web"}}"#)
        XCTAssertTrue(explicitAny.matches(fromContainer))
        let k8sOnly = try selector(#"{"matchLabels": {"k8s:app": "web"}}"#)
        XCTAssertTrue(k8sOnly.matches(fromK8s))
        XCTAssertFalse(k8sOnly.matches(fromContainer))
        let k8sExists = try selector(#"{"matchExpressions": [{"key": "k8s:app", "operator": "Exists"}]}"#)
        XCTAssertFalse(k8sExists.matches(fromContainer))
        let k8sAbsent = try selector(#"{"matchExpressions": [{"key": "k8s:app", "operator": "DoesNotExist"}]}"#)
        XCTAssertTrue(k8sAbsent.matches(fromContainer))
        // A label of the key from one source with another value does not satisfy In.
        XCTAssertFalse(any.matches(labels("k8s:app=db", "container:app=cache")))
    }

    func testSelectorValidationNamesTheField() throws {
        let cases: [(String, String, String)] = [
            (
                #"{"matchExpressions": [{"key": "env", "operator": "In"}]}"#,
                "endpointSelector.matchExpressions[0].values", "operator In needs at least one value"
            ),
            (
                #"{"matchExpressions": [{"key": "env", "operator": "NotIn", "values": []}]}"#,
                "endpointSelector.matchExpressions[0].values", "operator NotIn needs at least one value"
            ),
            (
                #"{"matchExpressions": [{"key": "env", "operator": "Exists", "values": ["x"]}]}"#,
                "endpointSelector.matchExpressions[0].values", "operator Exists takes no values"
            ),
            (
                #"{"matchExpressions": [{"key": "env", "operator": "DoesNotExist", "values": ["x"]}]}"#,
                "endpointSelector.matchExpressions[0].values", "operator DoesNotExist takes no values"
            ),
            (
                #"{"matchExpressions": [{"key": "env", "operator": "in", "values": ["x"]}]}"#,
                "endpointSelector.matchExpressions[0].operator", "operator \"in\" is unknown"
            ),
            (
                #"{"matchExpressions": [{"operator": "Exists"}]}"#,
                "endpointSelector.matchExpressions[0].key", "is required"
            ),
            (
                #"{"matchExpressions": [{"key": "a b", "operator": "Exists"}]}"#,
                "endpointSelector.matchExpressions[0].key", "key must not contain whitespace"
            ),
            (#"{"matchLabels": {"app": 5}}"#, "endpointSelector.matchLabels.app", "expected a string, got number"),
            (
                #"{"matchLabels": {"k8s:app": "a b"}}"#, #"endpointSelector.matchLabels["k8s:app"]"#,
                "must not contain whitespace"
            ),
            (#"{"matchLabel": {"app": "x"}}"#, "endpointSelector.matchLabel", "unknown field \"matchLabel\""),
        ]
        for (text, field, reason) in cases {
            let error = try XCTUnwrap(agentError { try selector(text) }, text)
            XCTAssertEqual(error.field, field, text)
            XCTAssertTrue(error.message.contains(reason), "\(text): \(error.message)")
        }
    }

    func testNamespaceIsAddedUnlessTheSelectorNamesIt() throws {
        let docs = try PolicyParser.parse(
            JSON.parse(
                policy(
                    namespace: "web-tier",
                    spec: """
                        {"endpointSelector": {"matchLabels": {"app": "frontend"}},
                         "egress": [{"toEndpoints": [
                            {"matchLabels": {"app": "cache"}},
                            {"matchLabels": {"io.kubernetes.pod.namespace": "api-tier"}},
                            {"matchExpressions": [{"key": "k8s:io.kubernetes.pod.namespace", "operator": "Exists"}]},
                            {}
                         ]}]}
                        """)))
        let rule = docs[0].rules[0]
        let sameNsCache = labels("k8s:app=cache", "k8s:io.kubernetes.pod.namespace=web-tier")
        let otherNsCache = labels("k8s:app=cache", "k8s:io.kubernetes.pod.namespace=api-tier")
        XCTAssertTrue(
            rule.endpointSelector.matches(labels("k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=web-tier")))
        XCTAssertFalse(rule.endpointSelector.matches(labels("k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=x")))
        let peers = try XCTUnwrap(rule.egress?[0].endpoints)
        XCTAssertTrue(peers[0].matches(sameNsCache))
        XCTAssertFalse(peers[0].matches(otherNsCache))
        XCTAssertTrue(peers[1].matches(otherNsCache), "a selector naming the namespace keeps its own")
        XCTAssertFalse(peers[1].matches(sameNsCache))
        XCTAssertTrue(peers[2].matches(otherNsCache), "matchExpressions on the namespace key count as naming it")
        XCTAssertTrue(peers[3].matches(sameNsCache), "{} is every pod of the policy's namespace")
        XCTAssertFalse(peers[3].matches(otherNsCache))
    }

    func testClusterwidePolicyAddsNoNamespace() throws {
        let docs = try PolicyParser.parse(
            JSON.parse(
                """
                {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "cw"},
                 "spec": {"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}]}]}}
                """))
        XCTAssertEqual(docs[0].key, PolicyKey(namespace: nil, name: "cw"))
        XCTAssertEqual(docs[0].rules[0].endpointSelector, LabelSelector.all)
        XCTAssertEqual(docs[0].rules[0].ingress?[0].endpoints, [LabelSelector.all])
    }
}
